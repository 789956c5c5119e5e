"""The judge on notebooks as students save them: extra cells, copied cells, magics, the release's
names, line endings, byte-order marks, editors' formats; each honest style gets full marks, and
extra cells run once per runner. The shared fixtures are in judging.py."""

import ast
import json

import nbformat
import pytest
from judging import (
    honest_notebook,
    notebook_cell,
    points,
    sample_programs,
)
from nbgrader.nbgraderformat.common import SchemaTooOldError

from autograder.assignment.solution import setup_source, solution_sources
from autograder.intake.notebook_reader import (
    UnreadableSubmission,
    function_programs,
    normalise_cells,
    read_notebook_text,
)
from autograder.runner import ipython_cells, launch
from autograder.samples import catalogue, honest_styles
from autograder.samples.mistakes import (
    FUNCTION_NAMES,
)
from autograder.verdicts import TEST_CELLS
from diffusion_course.config import DDIMConfig

# the most common student style: imports and a helper in a cell of their own, used later
HELPER_CELL = """import math


def angle_range(config):
    return math.acos(config.max_signal_rate), math.acos(config.min_signal_rate)
"""


def test_function_programs_run_the_students_extra_cells_before_each_answer():
    notebook = honest_notebook(solution_sources())
    notebook.cells.insert(1, notebook_cell("code", HELPER_CELL))
    notebook.cells.insert(2, notebook_cell("markdown", "my notes"))
    # after test_denoise: visible to reverse_diffusion only
    notebook.cells.insert(7, notebook_cell("code", "STEPS = 3"))
    programs = function_programs(notebook, FUNCTION_NAMES)
    # the release's locked setup cell comes first, as in the notebook; test cells are not run
    assert [(cell.get("release", False), cell["own"]) for cell in
            programs["diffusion_schedule"]] == [(True, False), (False, False), (False, True)]
    assert programs["diffusion_schedule"][1]["source"] == HELPER_CELL
    assert [cell["source"] for cell in programs["reverse_diffusion"]
            if not cell["own"] and not cell.get("release")] == [HELPER_CELL, "STEPS = 3"]
    assert programs["reverse_diffusion"][-1]["own"]
    assert [cell["index"] for cell in programs["reverse_diffusion"]] == [0, 1, 7, 8]


def test_a_copied_answer_cell_or_a_lost_grade_id_becomes_a_plain_student_cell():
    notebook = honest_notebook(solution_sources())
    copy = notebook_cell("code", "def denoise(self, *args):\n    pass\n", "answer_denoise",
                         solution=True)
    lost = notebook_cell("code", "x = 1", None)
    lost.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False}
    unknown = notebook_cell("code", "y = 2", "answer_denoise-Copy1", solution=True)
    notebook.cells[3:3] = [copy, lost, unknown]
    known = {"setup", *(f"answer_{name}" for name in FUNCTION_NAMES), *TEST_CELLS.values()}
    normalised = normalise_cells(notebook, known)
    # the copy's metadata goes (the last copy keeps it, as nbgrader's DeduplicateIds would):
    # nothing is left for DeduplicateIds to empty into {}, which crashed add_missing_task_cells
    assert [("nbgrader" in cell.metadata) for cell in normalised.cells[3:7]] == [
        False, False, False, True]
    # the judge runs both, in order: the draft as an extra cell, then the final answer
    program = function_programs(normalised, FUNCTION_NAMES)["denoise"]
    assert [(cell["source"], cell["own"]) for cell in program if not cell.get("release")][
        -4:] == [(copy.source, False), ("x = 1", False), ("y = 2", False),
                 (solution_sources()["denoise"], True)]


def test_byte_order_marks_crlf_and_classic_notebooks_are_read_and_old_formats_refused():
    notebook = honest_notebook(solution_sources())
    for cell in notebook.cells:
        del cell["id"]  # the classic Notebook writes nbformat 4.4 without cell ids
        cell.metadata["jupyter"] = {"source_hidden": False}  # JupyterLab's metadata
    notebook.nbformat_minor = 4
    notebook.cells[1].outputs = [nbformat.v4.new_output("stream", text="old output\n")]
    text = "\ufeff" + nbformat.writes(notebook).replace("\n", "\r\n")
    read = read_notebook_text(text)
    assert function_programs(read, FUNCTION_NAMES)["denoise"][-1]["source"] == (
        solution_sources()["denoise"])
    version_3 = json.dumps({"nbformat": 3, "nbformat_minor": 0, "worksheets": [],
                            "metadata": {}})
    with pytest.raises(UnreadableSubmission, match="nbformat 3"):
        read_notebook_text(version_3)
    with pytest.raises(UnreadableSubmission, match="not valid JSON"):
        read_notebook_text('{"cells": [')
    with pytest.raises(UnreadableSubmission, match="not a valid Jupyter notebook"):
        read_notebook_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                                       "cells": "not a list"}))


# honest-independent-a and -b: correct solutions written differently from the reference (other
# ops, other order of operations, another time grid, helpers); copy-renamed: a with every name
# changed. Each must pass, and its training land near the reference's.
@pytest.mark.parametrize("sample", ["honest-helpers-in-extra-cell",
                                    "honest-windows-line-endings", "honest-independent-a",
                                    "honest-independent-b", "copy-renamed"])
def test_a_correct_sample_in_another_style_gets_full_marks(
        grade_submission, sample):
    assert sample in catalogue.JUDGE_LEVEL_SAMPLES
    verdicts = grade_submission(sample_programs(sample))
    for cell, verdict in verdicts.items():
        assert verdict.passed and verdict.score_fraction == 1.0, (cell, verdict.message)
    assert points(verdicts) == catalogue.EXPECTED_SCORES[sample]


@pytest.mark.parametrize("copy", ["copy-verbatim", "copy-commented"])
def test_a_copy_that_changes_no_code_gets_the_grade_of_its_original(copy):
    """The judge runs what Python compiles: the same syntax trees as honest-independent-a's
    (graded above), so the same verdicts (the training is deterministic)."""
    def syntax_trees(sample):
        return {name: [ast.dump(ast.parse(cell["source"])) for cell in program]
                for name, program in sample_programs(sample).items()}

    assert syntax_trees(copy) == syntax_trees("honest-independent-a")
    assert (catalogue.EXPECTED_SCORES[copy]
            == catalogue.EXPECTED_SCORES["honest-independent-a"])



def test_nbgrader_alone_loses_a_submission_with_a_copied_answer_cell(nbgrader_sanitize):
    """jupyter/nbgrader#1083: DeduplicateIds empties the draft's metadata to {}, and the next
    preprocessors read its grade_id. NormaliseCells is what keeps the submission."""
    text = (catalogue.SUBMISSIONS / "honest-copied-cells" / "ddim.ipynb").read_text()
    with pytest.raises((KeyError, SchemaTooOldError)):
        nbgrader_sanitize(read_notebook_text(text), skip={"NormaliseCells"})
    notebook = nbgrader_sanitize(read_notebook_text(text))
    grade_ids = [cell.metadata.get("nbgrader", {}).get("grade_id") for cell in notebook.cells]
    # the final answer and the copied test cell keep their roles; the draft is the student's
    assert grade_ids.count("answer_denoise") == grade_ids.count("test_diffusion_schedule") == 1


HONEST_STYLES = ["honest-magics-and-shell-escapes", "honest-helper-uses-release-names",
                 "honest-copied-cells", "honest-split-cells-and-plots", "honest-colab",
                 "honest-vscode"]


@pytest.mark.parametrize("sample", HONEST_STYLES)
def test_every_honest_style_gets_full_marks(grade_submission, nbgrader_sanitize, sample):
    assert HONEST_STYLES == honest_styles.STYLES
    assert sample in catalogue.JUDGE_LEVEL_SAMPLES
    notebook = read_notebook_text(
        (catalogue.SUBMISSIONS / sample / catalogue.NOTEBOOK).read_text())
    if sample == "honest-copied-cells":  # its point is nbgrader's handling of the copies
        notebook = nbgrader_sanitize(notebook)
    verdicts = grade_submission(function_programs(notebook, FUNCTION_NAMES))
    for cell, verdict in verdicts.items():
        assert verdict.passed and verdict.score_fraction == 1.0, (cell, verdict.message)
    assert points(verdicts) == catalogue.EXPECTED_SCORES[sample]
    messages = "".join(verdict.message for verdict in verdicts.values())
    if sample == "honest-magics-and-shell-escapes":  # said once, not once per function
        assert messages.count("shell commands are not run by the grader") == 1


# the release's names are read only inside a magic: the release cell that defines them must run
COUNTED_CELL = """%matplotlib inline
!echo this line is not run
%time READ = (config.min_signal_rate, SEED)
with open("cell-runs.txt", "a") as runs:
    runs.write(f"{READ[0]} {READ[1]}\\n")
"""


def test_extra_cells_run_once_per_runner_with_the_releases_names(tmp_path):
    """The units and the training of one runner share one pass over the notebook's cells: the
    cell's counter file, read after the run, has one line, written with the release's config
    (in grading mode: the quick profile) and SEED."""
    notebook = honest_notebook(solution_sources())
    release = json.loads(catalogue.RELEASE.read_text())
    release_cells = [cell for cell in release["cells"] if cell["metadata"]["nbgrader"][
        "grade_id"] in ("hyperparameters",)]
    notebook.cells[1:1] = [nbformat.from_dict(cell) for cell in release_cells]
    notebook.cells.insert(2, notebook_cell("code", COUNTED_CELL))
    programs = function_programs(notebook, FUNCTION_NAMES)
    config = DDIMConfig.from_profile("quick")
    request = {"config": config.to_dict(), "preamble": setup_source(), "programs": programs,
               "training": {"config": config.to_dict(), "programs": programs, "seed": 0,
                            "steps": 2, "num_train_images": 2 * config.batch_size,
                            "images_seed": 0}}
    run = launch.RunnerProcess(request, "units run", 300, tmp_path)
    try:
        units = run.wait_for("units")
        assert run.wait_for("training")["completed"] is True
    finally:
        run.cancel()
    assert not units["definition_errors"]
    notes = [note for name in FUNCTION_NAMES for note in units["notes"][name]]
    assert {note.get("remark") for note in notes} == {ipython_cells.SHELL_NOTE}, notes
    counter = next(tmp_path.glob("runner-*/work/cell-runs.txt")).read_text()
    assert counter == f"{config.min_signal_rate} 42\n"

