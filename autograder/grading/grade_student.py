"""Grades one student of a course folder with `nbgrader autograde`, and records the outcome.

    python -m autograder.grading.grade_student --course DIR --student=NAME [--db-url URL]

The course folder must hold the release (`nbgrader generate_assignment`) and the student's
collected notebook at submitted/<NAME>/ddim/ (`python -m autograder demo` makes both). One call
is one student, so a batch system can grade a class as an array of independent tasks. It writes
- results/<quoted NAME>.json: {"student", "status": "ok" | "failed" | "grader error",
  "reason", "graded" (whether the gradebook has its grades), "seconds", "attempts"}; the
  grades themselves are in the gradebook;
- logs/<quoted NAME>.log: nbgrader's output of the last attempt.

A fault of the grader (the judge's GraderError, nbgrader killed by a signal, a locked
gradebook) is never the student's zero: that student is graded once more, and if it happens
again the result says "grader error" with the reason. The exit status is 0 when the result was
written (whatever the grade), 1 when it was not.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from autograder import GRADER_ERROR_FILE, records_folder
from autograder.intake.collect import ASSIGNMENT, NOTEBOOK
from autograder.intake.no_follow import read_json_no_follow

REPO_ROOT = Path(__file__).resolve().parents[2]
GRADER_ERROR = re.compile(r"\bGrader(?:Error|Fault)\w*: (.+)")
# the machine, not the student: a locked gradebook, a full disk, output lost under load
GRADER_TROUBLE = ("database is locked", "No space left on device",
                  "Timeout waiting for IOPub output")
INTERRUPTED = ("CellTimeoutError", "KeyboardInterrupt", "TimeoutError")
ATTEMPTS = 2  # a grader fault is retried once


def result_path(course_root, student):
    return Path(course_root) / "results" / f"{quote(student, safe='')}.json"


def log_path(course_root, student):
    return Path(course_root) / "logs" / f"{quote(student, safe='')}.log"


def nbgrader_environment(course_root, db_url=None):
    environment = {**os.environ, "AUTOGRADER_COURSE_ROOT": str(course_root)}
    if db_url:
        environment["NBGRADER_DB_URL"] = db_url  # read by nbgrader_config.py
    return environment


def run_nbgrader(arguments, course_root, db_url=None, on_start=None):
    """(exit status, output) of one nbgrader command, run from the repository root (where
    nbgrader_config.py is), in its own session so that a terminal's Ctrl-C reaches only us."""
    process = subprocess.Popen([sys.executable, "-m", "nbgrader", *arguments], cwd=REPO_ROOT,
                               env=nbgrader_environment(course_root, db_url),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               errors="replace", start_new_session=True)
    if on_start is not None:
        on_start(process)
    output, _ = process.communicate()
    return process.returncode, output


def stop(process, grace_s=20):
    """Stops an nbgrader process cleanly: SIGINT lets it shut its kernel down, then SIGKILL."""
    for signal_number, wait_s in ((signal.SIGINT, grace_s), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, signal_number)
            process.wait(timeout=wait_s)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def grader_fault(returncode, log, record=None):
    """The reason when the grader (not the student's code) failed, else None. `record` is what
    the judge wrote to its GRADER_ERROR_FILE, if anything."""
    if isinstance(record, dict) and record.get("reason"):
        return str(record["reason"])
    match = GRADER_ERROR.search(log)
    if match:
        return match.group(1).strip()
    if returncode < 0:
        return f"nbgrader was killed by signal {-returncode} (the machine may be short of memory)"
    for trouble in GRADER_TROUBLE:
        if trouble in log:
            return f"nbgrader failed: {trouble}"
    return None


def starved_cell(cells):
    """The grade_id of an instructor cell that timed out before any cell of the student's ran:
    no student code can have caused that, so the machine was too slow."""
    for cell in cells:
        metadata = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") == "code" and not metadata.get("locked"):
            return None  # from here on, student code runs
        if any(output.get("ename") in INTERRUPTED for output in cell.get("outputs", [])):
            return metadata.get("grade_id", "?")
    return None


KERNEL_LIMIT = re.compile(r"Kernel died: (\w[\w ]* limit .+ exceeded)")
# submission.read_notebook_text's reason why a notebook cannot be graded (invalid JSON, ...)
UNREADABLE = re.compile(r"UnreadableSubmission: (.+)")


def student_failure(course_root, student, log):
    """Why a submission failed as a whole, or timed out in a cell; None when it did not."""
    autograded = Path(course_root) / "autograded" / student / ASSIGNMENT / NOTEBOOK
    if not autograded.exists():
        if unreadable := UNREADABLE.search(log):
            return unreadable.group(1).strip()
        errors = [line.strip() for line in log.splitlines()
                  if "[ERROR]" in line or "Error" in line]
        for line in reversed(errors):
            # the sandbox names the limit that stopped the kernel (sandbox/kernel.py)
            if hit := KERNEL_LIMIT.search(line):
                return f"{hit.group(1)} in the notebook's kernel"
        return "autograding failed: " + (errors[-1] if errors else "see the log")
    try:
        cells = json.loads(autograded.read_text())["cells"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"the autograded notebook is unreadable ({error})"
    starved = starved_cell(cells)
    if starved is not None:
        return (f"GraderFault: the instructor's cell {starved!r} did not finish in time before "
                "any student code ran (the machine is overloaded)")
    for cell in cells:
        for output in cell.get("outputs", []):
            if output.get("ename") in INTERRUPTED:
                grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id", "?")
                return f"cell {grade_id!r} did not finish in time (an endless loop?)"
    return None


def write_result(course_root, result):
    path = result_path(course_root, result["student"])
    path.parent.mkdir(exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(result, indent=1))
    os.replace(temporary, path)  # atomic: a reader never sees half a result


def grade_student(course_root, student, db_url=None, on_start=None, stopping=None):
    """Autogrades one student (retrying a grader fault once) and writes its result.

    Returns the result dict, or None when `stopping` (a threading.Event) was set meanwhile:
    an interrupted student gets no result, so that a rerun grades it.
    """
    course_root = Path(course_root)
    started = time.perf_counter()
    fault_record = records_folder(course_root, student, ASSIGNMENT) / GRADER_ERROR_FILE
    for attempt in range(1, ATTEMPTS + 1):
        fault_record.unlink(missing_ok=True)  # a fault of an earlier attempt is not evidence
        returncode, log = run_nbgrader(["autograde", ASSIGNMENT, f"--student={student}",
                                        "--force"], course_root, db_url, on_start)
        attempts = attempt
        if stopping is not None and stopping.is_set():
            return None
        log_path(course_root, student).parent.mkdir(exist_ok=True)
        log_path(course_root, student).write_text(log)
        failure = None
        fault = grader_fault(returncode, log, read_json_no_follow(fault_record))
        if fault is None:
            failure = student_failure(course_root, student, log)
            if failure and failure.startswith("GraderFault: "):
                fault = failure.removeprefix("GraderFault: ")
        if fault is None:
            status, reason = ("failed", failure) if failure else ("ok", "")
            break
        status, reason = "grader error", fault
    # the gradebook holds this run's grades only when nbgrader got as far as the notebook
    graded = status != "grader error" and (
        course_root / "autograded" / student / ASSIGNMENT / NOTEBOOK).exists()
    result = {"student": student, "status": status, "reason": reason, "graded": graded,
              "seconds": round(time.perf_counter() - started, 1), "attempts": attempts}
    write_result(course_root, result)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder.grading.grade_student",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--course", required=True, help="the course folder")
    parser.add_argument("--student", required=True,
                        help="the student's folder name (write --student=NAME)")
    parser.add_argument("--db-url", help="nbgrader's gradebook URL (default: $NBGRADER_DB_URL, "
                        "else sqlite gradebook.db in the course folder)")
    arguments = parser.parse_args(argv)
    submitted = Path(arguments.course) / "submitted" / arguments.student / ASSIGNMENT
    if not submitted.is_dir():
        parser.error(f"{submitted} does not exist: collect the submission first "
                     "(python -m autograder demo does)")
    result = grade_student(arguments.course, arguments.student, arguments.db_url)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
