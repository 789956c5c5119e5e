"""What the autograder reads from the student release: the points of each graded cell, and the
functions the student writes, checked against nbgrader's own reading of the notebook."""

from pathlib import Path

import nbformat
from nbgrader.utils import determine_grade, is_grade, is_solution

from autograder import FUNCTION_NAMES
from autograder.samples import catalogue

RELEASE = Path(__file__).resolve().parents[1] / "assignment" / "ddim" / "ddim.ipynb"


def test_the_sample_grades_use_the_releases_points():
    cells = nbformat.read(RELEASE, as_version=4).cells
    # nbgrader's autograder tests: graded cells that are no answers; (score, max points) each
    autograded = {cell.metadata.nbgrader["grade_id"]: determine_grade(cell)[1] for cell in cells
                  if is_grade(cell) and not is_solution(cell)}
    assert catalogue.POINTS == autograded
    assert list(catalogue.POINTS) == list(autograded)  # the notebook's order
    assert catalogue.FULL == autograded


def test_the_function_names_are_the_releases_answer_cells():
    cells = nbformat.read(RELEASE, as_version=4).cells
    answers = [cell.metadata.nbgrader["grade_id"].removeprefix("answer_") for cell in cells
               if is_solution(cell) and cell.metadata.nbgrader["grade_id"].startswith("answer_")]
    assert FUNCTION_NAMES == tuple(answers)
