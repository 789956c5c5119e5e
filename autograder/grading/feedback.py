"""What a student reads in the HTML feedback (`nbgrader generate_feedback`).

nbgrader's GetGrades puts each cell's score into the notebook; this preprocessor then makes the
page readable for a student (autograder/grading/feedback_templates/ddim_feedback lays it out):
- the hidden tests are cut out of the test cells again, as in the release;
- each verdict is shown once (the judge's message is both printed and raised: only the printed
  copy stays);
- absolute paths in outputs (the grader's folders) are shortened to their file name;
- a cell graded by hand that nobody graded yet says so, instead of "0.0 / 5.0".
"""

import re

from nbgrader import utils
from nbgrader.preprocessors import GetGrades

from autograder.nbgrader_steps.hidden_tests import released_source

# a path from the machine's root (after any ANSI colour code); URLs are left alone
ABSOLUTE_PATH = re.compile(r"/(?:home|root|work|tmp|usr|opt|var|srv|mnt|media|run|proc|etc|lib|"
                           r"Users|private|scratch|data)(?:/[\w.@+-]+)*/([\w.@+-]+)")


def shorten_paths(text):
    """'/home/ta/course/autograder/judge.py' -> '.../judge.py'."""
    return ABSOLUTE_PATH.sub(r".../\1", text)


def readable_outputs(outputs):
    """The outputs without an error that repeats text already printed, with paths shortened."""
    printed = "".join(output.get("text", "") for output in outputs
                      if output.get("output_type") == "stream")
    kept = []
    for output in outputs:
        if output.get("output_type") == "error" and \
                "\n".join(output.get("traceback", [])).strip() in printed:
            continue
        if "text" in output:
            output["text"] = shorten_paths(output["text"])
        if "traceback" in output:
            output["traceback"] = [shorten_paths(line) for line in output["traceback"]]
            output["evalue"] = shorten_paths(output.get("evalue", ""))
        kept.append(output)
    return kept


class StudentFeedback(GetGrades):
    """GetGrades, plus the clean-up above. Sets resources["nbgrader"]["autograded_score"],
    ["autograded_max"], ["manual_score"], ["manual_max"] (the cells graded by hand) and
    ["ungraded_points"] (points of cells still to be graded by hand)."""

    def preprocess(self, nb, resources):
        resources.setdefault("nbgrader", {})
        resources["nbgrader"]["ungraded_points"] = 0.0
        nb, resources = super().preprocess(nb, resources)
        graded = [cell.metadata.nbgrader for cell in nb.cells if utils.is_grade(cell)]
        for part, by_hand in (("autograded", False), ("manual", True)):
            cells = [metadata for metadata in graded if bool(metadata.get("solution")) == by_hand]
            resources["nbgrader"][f"{part}_max"] = sum(float(cell["points"]) for cell in cells)
            resources["nbgrader"][f"{part}_score"] = sum(float(cell.get("score") or 0)
                                                         for cell in cells)
        return nb, resources

    def preprocess_cell(self, cell, resources, cell_index):
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        if utils.is_grade(cell) and utils.is_solution(cell):
            grade = self.gradebook.find_grade(cell.metadata.nbgrader["grade_id"],
                                              self.notebook_id, self.assignment_id,
                                              self.student_id)
            cell.metadata.nbgrader["needs_manual_grade"] = bool(grade.needs_manual_grade)
            if grade.needs_manual_grade:
                resources["nbgrader"]["ungraded_points"] += float(grade.max_score)
        if utils.is_grade(cell) and not utils.is_solution(cell):
            cell.source = released_source(cell.source)
        if cell.cell_type == "code":
            cell.outputs = readable_outputs(cell.outputs)
        return cell, resources
