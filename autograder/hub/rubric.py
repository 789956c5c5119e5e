"""The written summary's rubric, for the graders' eyes: in the formgrader, not in the feedback.

`ShowRubric` (autograde) appends `summary_rubric.md` to the instruction cell above the summary,
in the graded copy that the formgrader shows; `HideRubric` (generate_feedback) takes it out
again, so the students' feedback never holds it. The release and the student's own cells are
not touched, and no grade depends on it.
"""

from pathlib import Path

from nbgrader.preprocessors import NbGraderPreprocessor

SUMMARY_CELL = "summary"
RUBRIC = Path(__file__).with_name("summary_rubric.md")
BEGIN, END = "<!-- BEGIN RUBRIC -->", "<!-- END RUBRIC -->"


def summary_index(cells):
    for index, cell in enumerate(cells):
        if cell.metadata.get("nbgrader", {}).get("grade_id") == SUMMARY_CELL:
            return index
    return None


def without_rubric(source):
    start = source.find(BEGIN)
    return source if start < 0 else source[:start].rstrip("\n")


class ShowRubric(NbGraderPreprocessor):
    def preprocess(self, nb, resources):
        index = summary_index(nb.cells)
        if index and nb.cells[index - 1].cell_type == "markdown":
            above = nb.cells[index - 1]
            above.source = (f"{without_rubric(above.source)}\n\n{BEGIN}\n\n"
                            f"{RUBRIC.read_text().strip()}\n\n{END}")
        return nb, resources


class HideRubric(NbGraderPreprocessor):
    def preprocess(self, nb, resources):
        for cell in nb.cells:
            if cell.cell_type == "markdown" and BEGIN in cell.source:
                cell.source = without_rubric(cell.source)
        return nb, resources
