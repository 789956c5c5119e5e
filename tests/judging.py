"""What the judge's tests share: grading at the judge level with one grader cache, the sample
submissions' programs and points, notebooks laid out like the release, and nbgrader's own
sanitising of a submission.

The judge's tests are three files, so that pytest-xdist can spread them over its workers:
test_judge.py (the verdicts and the grader's faults), test_judge_notebooks.py (notebooks as
students save them) and test_judge_training.py (the training verdict).
"""

import copy
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import traitlets.config
from nbgrader.api import Gradebook
from nbgrader.preprocessors import ClearSolutions, ComputeChecksums, LockCells, SaveCells

from autograder.assignment.solution import setup_source
from autograder.intake.notebook_reader import (
    function_programs,
    read_notebook_text,
)
from autograder.judge import grade
from autograder.samples import catalogue
from autograder.samples.mistakes import (
    FUNCTION_NAMES,
)
from autograder.verdicts import TEST_CELLS, TRAINING_TEST_CELL
from diffusion_course.config import DDIMConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
ALL_CELLS = (*TEST_CELLS.values(), TRAINING_TEST_CELL)


@pytest.fixture(scope="session")
def grade_submission(tmp_path_factory):
    """Grades {function name: source} in the quick profile, with one grader cache for the whole
    run: pytest-xdist's workers share it (the cache writes atomically), so the reference is
    trained and the untrained model measured once, whichever test file comes first."""
    base = tmp_path_factory.getbasetemp()
    cache_dir = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "grader-cache"
    config = DDIMConfig.from_profile("quick")

    def grade_it(functions, **options):
        return grade(functions, setup_source(), config=config, **{"cache_dir": cache_dir,
                                                                   **options})

    grade_it.cache_dir = cache_dir
    return grade_it


def sample_programs(sample):
    """The judge's programs of a committed sample submission, read as nbgrader's hook reads it."""
    text = (catalogue.SUBMISSIONS / sample / catalogue.NOTEBOOK).read_text(
        encoding="utf-8")
    return function_programs(read_notebook_text(text), FUNCTION_NAMES)


def points(verdicts):
    """{test cell: points} as nbgrader scores the verdicts (a failed cell scores 0)."""
    return {cell: catalogue.POINTS[cell] * verdict.score_fraction if verdict.passed
            else 0 for cell, verdict in verdicts.items()}



def notebook_cell(cell_type, source, grade_id=None, **nbgrader):
    cell = (nbformat.v4.new_code_cell(source) if cell_type == "code"
            else nbformat.v4.new_markdown_cell(source))
    if grade_id is not None:
        cell.metadata["nbgrader"] = {"grade_id": grade_id, "schema_version": 3, **nbgrader}
    return cell


def honest_notebook(answers):
    """A notebook laid out like the release, with the student's extra cells and copied cells."""
    cells = [notebook_cell("code", setup_source(), "setup", locked=True)]
    for name in FUNCTION_NAMES:
        cells.append(notebook_cell("code", answers[name], f"answer_{name}", solution=True))
        cells.append(notebook_cell("code", "print('self-check')", TEST_CELLS[name], grade=True,
                           points=3))
    return nbformat.v4.new_notebook(cells=cells)



def nbgrader_sanitize_chain(skip=()):
    """nbgrader_config.py's sanitize preprocessors, read from the file nbgrader reads."""
    config = traitlets.config.Config()
    environment = dict(os.environ)  # the configuration sets nbgrader's variables: not ours
    try:
        path = REPO_ROOT / "nbgrader_config.py"
        exec(compile(path.read_text(), str(path), "exec"),
             {"get_config": lambda: config, "__file__": str(path)})
    finally:
        os.environ.clear()
        os.environ.update(environment)
    return [cls for cls in config.Autograde.sanitize_preprocessors if cls.__name__ not in skip]


@pytest.fixture(scope="session")
def nbgrader_sanitize(tmp_path_factory):
    """Runs nbgrader_config.py's sanitize preprocessors on a notebook, against a gradebook made
    from the instructor's notebook as `nbgrader generate_assignment` makes it: what `nbgrader
    autograde` does to a submission before it runs it, without running it."""
    db_url = f"sqlite:///{tmp_path_factory.mktemp('gradebook') / 'gradebook.db'}"
    with Gradebook(db_url, course_id="default_course") as gradebook:
        gradebook.update_or_create_assignment("ddim")
    resources = {"nbgrader": {"db_url": db_url, "assignment": "ddim", "notebook": "ddim"}}
    source = nbformat.read(REPO_ROOT / "solutions" / "ddim" / "ddim.ipynb", as_version=4)
    for preprocessor in (LockCells, ClearSolutions, ComputeChecksums, SaveCells):
        source, _ = preprocessor().preprocess(source, resources)

    def sanitize(notebook, skip=()):
        for preprocessor in nbgrader_sanitize_chain(skip):
            notebook, _ = preprocessor().preprocess(notebook, copy.deepcopy(resources))
        return notebook

    return sanitize



def imported_after(statements, modules):
    """The names among `modules` that a fresh Python process has imported after `statements`."""
    probe = (f"import sys; {statements}; "
             f"print(','.join(sorted(set({sorted(modules)!r}) & set(sys.modules))))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return [name for name in result.stdout.strip().split(",") if name]
