"""Reading a student's notebook the way the student wrote it, for nbgrader and for the judge.

Students write the same code in many ways, and none of these may cost them points:
- a UTF-8 byte-order mark, Windows line endings, a classic-Notebook file (nbformat 4.4, no cell
  ids), JupyterLab metadata and outputs: `SubmissionExporter` reads them all (nbgrader's own
  reader fails on a byte-order mark); an nbformat-3 or invalid file is refused with its reason;
- a copied answer or test cell (Jupyter copies its nbgrader metadata) or one whose grade_id was
  lost or edited: nbgrader's `add_missing_cells` crashes on it with KeyError: 'grade_id'.
  `NormaliseCells` runs first and turns every such cell into a plain cell of the student's;
- helpers and imports in extra code cells: `function_programs` gives the judge, for each
  function, the student's own cells before its test cell followed by its answer cell, in
  notebook order, so the judge runs what the kernel ran; `written_cells` gives the similarity
  report all the code the student wrote.
"""

import json

import nbformat
from nbconvert.exporters import NotebookExporter
from nbformat.v4.rwbase import rejoin_lines
from nbgrader.api import Gradebook
from nbgrader.preprocessors import NbGraderPreprocessor

from autograder import TEST_CELLS


class UnreadableSubmission(ValueError):
    """The notebook cannot be graded as it is; the message says what to change."""


def read_notebook_text(text):
    """The NotebookNode of a submitted file's text, or UnreadableSubmission saying why not."""
    text = text.removeprefix("\ufeff")  # a byte-order mark (Windows editors write one)
    try:
        raw = json.loads(text)
    except ValueError as error:
        raise UnreadableSubmission(f"the notebook is not valid JSON ({error}); was it edited "
                                   "outside Jupyter? Download it again from Jupyter") from None
    version = raw.get("nbformat") if isinstance(raw, dict) else None
    if version != 4:
        raise UnreadableSubmission(
            f"the notebook has nbformat {version!r}, but only nbformat 4 (Jupyter Notebook 5+ "
            "or JupyterLab) can be graded: open it in Jupyter and save it, then submit again")
    cells = raw.get("cells")
    if not isinstance(cells, list) or not all(isinstance(cell, dict) for cell in cells):
        raise UnreadableSubmission("the notebook is not a valid Jupyter notebook: its cells are "
                                   "not a list of cells. Download it again from Jupyter")
    # as nbformat's own reader does: a cell's source saved as a list of lines becomes one string
    notebook = rejoin_lines(nbformat.from_dict(raw))
    try:
        nbformat.validate(notebook)
    except nbformat.ValidationError as error:
        raise UnreadableSubmission(f"the notebook is not a valid Jupyter notebook: "
                                   f"{error.message[:300]}") from None
    return notebook


class SubmissionExporter(NotebookExporter):
    """nbgrader's notebook reader, tolerant of what honest students' editors write."""

    def from_file(self, file_stream, resources=None, **kw):
        return self.from_notebook_node(read_notebook_text(file_stream.read()), resources, **kw)


def _nbgrader(cell):
    return cell.get("metadata", {}).get("nbgrader")


class NormaliseCells(NbGraderPreprocessor):
    """Makes every cell whose nbgrader metadata nbgrader cannot use a plain student cell.

    That is a cell that claims an nbgrader role but has no grade_id, a grade_id that the release
    does not have, or a grade_id that a later cell has too (a cell copied in Jupyter keeps its
    metadata). nbgrader's DeduplicateIds would keep the last copy too, but it empties the others'
    metadata to {}, and OverwriteCells' add_missing_task_cells then reads their grade_id:
    KeyError: 'grade_id', the whole submission lost (jupyter/nbgrader#1083). Runs before
    nbgrader's own sanitizing preprocessors, so DeduplicateIds finds nothing left to do.
    """

    def preprocess(self, nb, resources):
        with Gradebook(resources["nbgrader"]["db_url"]) as gradebook:
            source = gradebook.find_notebook(resources["nbgrader"]["notebook"],
                                             resources["nbgrader"]["assignment"])
            known = {cell.name for cell in source.source_cells}
        return normalise_cells(nb, known), resources


def normalise_cells(notebook, known_grade_ids):
    """Drops the nbgrader metadata of every cell whose grade_id is missing or unknown, and of
    every copy but the last of a grade_id (the one nbgrader's DeduplicateIds keeps)."""
    seen = set()
    for cell in reversed(notebook.cells):
        metadata = _nbgrader(cell)
        if metadata is None:
            continue
        grade_id = metadata.get("grade_id")
        if grade_id not in known_grade_ids or grade_id in seen:
            del cell.metadata["nbgrader"]
        seen.add(grade_id)
    return notebook


def cell_source(cell):
    """A cell's source as one string (nbformat saves it as a string or a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def written_cells(notebook):
    """[(label, source)] of the code the student wrote, in notebook order: the answer cells
    and the student's own code cells (no nbgrader metadata); the locked cells are the release's.
    """
    written = []
    for index, cell in enumerate(notebook["cells"]):
        metadata = _nbgrader(cell)
        if cell.get("cell_type") != "code" or (metadata is not None
                                                and not metadata.get("solution")):
            continue
        label = (metadata or {}).get("grade_id") or f"extra cell (cell {index + 1})"
        written.append((label, cell_source(cell)))
    return written


def function_programs(notebook, function_names):
    """{name: [cell]} for the judge: every code cell up to the function's test cell that the
    kernel ran before it, in notebook order (see runner/notebook_pass.py): the release's locked
    cells ("release"), the student's extra cells, and the function's answer cell(s) ("own").
    Graded test cells, and a student's copies of them, are not run: they only self-check."""
    cells = notebook["cells"]
    grade_ids = [(_nbgrader(cell) or {}).get("grade_id") for cell in cells]
    self_checks = {cell_source(cell).strip() for cell in cells
                   if (_nbgrader(cell) or {}).get("grade") and cell.get("cell_type") == "code"}
    programs = {}
    for name in function_names:
        answer_id, test_id = f"answer_{name}", TEST_CELLS[name]
        answers = [index for index, grade_id in enumerate(grade_ids) if grade_id == answer_id]
        tests = [index for index, grade_id in enumerate(grade_ids) if grade_id == test_id]
        end = tests[0] if tests else (answers[-1] + 1 if answers else 0)
        program = []
        for index, cell in enumerate(cells):
            source, metadata = cell_source(cell), _nbgrader(cell)
            if index in answers:
                program.append({"label": f"{name} cell", "source": source, "own": True,
                                "index": index})
            elif (index >= end or cell.get("cell_type") != "code" or not source.strip()
                  or source.strip() in self_checks):
                continue
            elif metadata is None:
                program.append({"label": f"extra cell (cell {index + 1} of the notebook)",
                                "source": source, "own": False, "index": index})
            elif metadata.get("locked") and not metadata.get("grade"):
                program.append({"label": f"the release's cell {metadata.get('grade_id')!r}",
                                "source": source, "own": False, "index": index,
                                "release": True})
        programs[name] = program if answers else None
    return programs
