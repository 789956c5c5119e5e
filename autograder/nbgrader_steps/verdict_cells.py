"""The nbgrader preprocessors that put the judge's verdicts into the graded test cells.

`StartVerdict` runs before the notebook executes: it takes the student's cells from the
notebook and starts `judge.grade` in the background, so the judge's runners and the student's
kernel share the machine. `ExternalVerdict` runs after: it waits for the verdicts and replaces
the outputs of each graded test cell with its verdict, an error output when it failed (nbgrader
then gives 0), a partial score when the verdict gives one. Whatever the student's kernel
printed, patched or suppressed in those cells no longer counts.

The verdicts are also written to `records_folder(...)/VERDICTS_FILE`, where no student code can
reach. A fault of the grader (GraderError, or any error of the trusted code) is never a
verdict: it is written to GRADER_ERROR_FILE there and raised, so that nbgrader records no grade
and the grading run reports FAILED (grader error) and grades the student again.
"""

import atexit
import json
import os
import threading
from concurrent.futures import Future
from pathlib import Path

from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool

from autograder import GRADER_ERROR_FILE, TEST_CELLS, VERDICTS_FILE, records_folder
from autograder.errors import GraderError
from autograder.intake.notebook_reader import function_programs
from diffusion_course.lean_imports import skip_unused_optional_imports

JUDGING = "autograder_judging"  # the key of the running judgement in nbconvert's resources
# How long nbgrader's exit waits for a judge still running (after the notebook itself failed):
# a process that exits while TensorFlow runs in that thread aborts ("terminate called without
# an active exception", SIGABRT), which would read as a grader fault instead of the student's.
JUDGE_EXIT_WAIT_S = 300
_judges = []


@atexit.register
def _let_running_judges_finish():
    for thread in _judges:
        thread.join(timeout=JUDGE_EXIT_WAIT_S)


def _grade_in_background(programs):
    """A Future of the verdicts. The judge (and TensorFlow with it) is imported in that thread:
    nbgrader starts the student's kernel meanwhile instead of waiting for the import."""
    future = Future()

    def run():
        try:
            # as in the runner (runner/launch.py): a third of Keras's start-up is optional
            # imports that nothing here uses
            skip_unused_optional_imports()
            from autograder import judge
            from autograder.assignment.solution_cells import setup_source

            future.set_result(judge.grade(programs, setup_source()))
        except BaseException as error:  # noqa: BLE001 - handed to whoever collects the result
            future.set_exception(error)

    _judges.append(threading.Thread(target=run, name="judge", daemon=True))
    _judges[-1].start()
    return future


def verdict_outputs(verdict, points):
    """The outputs that make nbgrader score a test cell as the verdict says."""
    status = "PASSED" if verdict.passed else "FAILED"
    text = f"Autograder verdict (computed outside your notebook's kernel): {status}\n"
    outputs = [NotebookNode(output_type="stream", name="stdout", text=text + verdict.message
                            + "\n")]
    if not verdict.passed:
        outputs.append(NotebookNode(output_type="error", ename="AutograderVerdict",
                                    evalue=verdict.message, traceback=[verdict.message]))
    elif verdict.score_fraction < 1.0:
        # a number as the cell's result is nbgrader's way of giving partial credit
        score = round(points * verdict.score_fraction, 2)
        outputs.append(NotebookNode(output_type="execute_result", execution_count=None,
                                    metadata={}, data={"text/plain": repr(score)}))
    return outputs


def _records(resources):
    """This student's records folder (made private to the grading user), emptied of old ones."""
    nbgrader = resources["nbgrader"]
    course_root = os.environ.get("AUTOGRADER_COURSE_ROOT") or Path(
        resources["metadata"]["path"]).resolve().parents[2]
    folder = records_folder(course_root, nbgrader["student"], nbgrader["assignment"])
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def write_record(folder, name, value):
    """Writes JSON atomically, never through a link."""
    temporary = Path(folder) / f".{name}.{os.getpid()}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                         0o600)
    with os.fdopen(descriptor, "w") as record:
        json.dump(value, record, indent=2)
    os.replace(temporary, Path(folder) / name)


class StartVerdict(NbGraderPreprocessor):
    """Starts the judge on the student's cells before the notebook executes."""

    enabled = Bool(True, help="Grade the DDIM functions outside the kernel").tag(config=True)

    def preprocess(self, nb, resources):
        folder = _records(resources)
        for name in (VERDICTS_FILE, GRADER_ERROR_FILE):
            (folder / name).unlink(missing_ok=True)
        resources[JUDGING] = _grade_in_background(function_programs(nb, tuple(TEST_CELLS)))
        return nb, resources


class ExternalVerdict(NbGraderPreprocessor):
    """Replaces the graded test cells' outputs with verdicts computed outside the kernel."""

    enabled = Bool(True, help="Grade the DDIM functions outside the kernel").tag(config=True)

    def preprocess(self, nb, resources):
        folder = _records(resources)
        judging = resources.pop(JUDGING, None) or _grade_in_background(
            function_programs(nb, tuple(TEST_CELLS)))
        try:
            verdicts = judging.result()
        except Exception as error:  # noqa: BLE001 - every fault of the trusted side is ours
            reason = str(error) if isinstance(error, GraderError) else (
                f"{type(error).__name__} in the grader: {error}")
            write_record(folder, GRADER_ERROR_FILE, {"reason": reason})
            raise GraderError(reason) from error
        for cell in nb.cells:
            metadata = cell.metadata.get("nbgrader", {})
            verdict = verdicts.get(metadata.get("grade_id"))
            if cell.cell_type == "code" and metadata.get("grade") and verdict is not None:
                cell.outputs = verdict_outputs(verdict, metadata.get("points", 0))
        write_record(folder, VERDICTS_FILE, {
            grade_id: {"passed": verdict.passed, "score_fraction": verdict.score_fraction,
                       "message": verdict.message} for grade_id, verdict in verdicts.items()})
        return nb, resources
