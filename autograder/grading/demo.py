"""The autograde demo: release the assignment, grade every sample submission, report.

    python -m autograder demo [--jobs N] [--submissions DIR] [--out DIR] [--regrade | --force]

(`python -m autograder grade --submissions DIR --out COURSE` is the same run for a real class.)

1. checks the submissions folder (one subfolder per student) before touching anything, and
   locks `--out` (a second run on it says who holds it);
2. generates the student release from `solutions/` into the course folder `--out`;
3. copies in each student's notebooks, as regular files (`autograder/intake/collect.py`), and grades
   every student with nbgrader (`autograder/grading/grade_student.py`), `--jobs` students at a
   time, each
   in its own process, with a progress bar;
4. prints a grade table per student and per cell, every failed submission with its reason, and
   writes grade_table.csv, verdicts.json, the CSV export, the HTML feedback, the scanner's
   report and the similarity report (similarity.html, similarity.csv).

A rerun on the same `--out` grades only the students that have no result yet (new ones, or
those a Ctrl-C stopped); `--regrade` grades everyone again; `--force` deletes the graded class
in `--out` and starts over. Ctrl-C stops the run cleanly and writes what was finished.
"""

import os
import shlex
import shutil
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from autograder import sandbox
from autograder.grading import gradebook, report
from autograder.grading.grade_student import grade_student, run_nbgrader, stop, write_result
from autograder.grading.run_lock import LOCK_FILE, LockedError, course_lock
from autograder.intake import collect, scanner
from autograder.intake.collect import ASSIGNMENT, SubmissionsError
from autograder.similarity import report as similarity_report
from diffusion_course.config import default_profile
from diffusion_course.quiet import quiet_tensorflow_startup

REPO_ROOT = Path(__file__).resolve().parents[2]
MARKER = ".autograde-demo"  # only a folder this demo made is ever deleted by it


def nbgrader(*arguments, course_root):
    returncode, output = run_nbgrader(arguments, course_root)
    if returncode != 0:
        raise SystemExit(f"nbgrader {' '.join(arguments)} failed:\n{output[-3000:]}")


def check_out(out):
    """Refuses an --out that this demo did not make (before anything is deleted or locked)."""
    if out.exists() and not out.is_dir():
        raise SystemExit(f"--out {out} is a file: give a folder for the course.")
    if out.is_dir() and any(entry.name != LOCK_FILE for entry in os.scandir(out)) \
            and not (out / MARKER).exists():
        raise SystemExit(f"--out {out} exists and was not made by this demo; choose another "
                         "--out.")


def prepare_course_folder(out, force):
    """The course folder with the instructor source and the release; with `force`, the graded
    class there is deleted first (the lock file stays: we hold it)."""
    if force:
        for entry in os.scandir(out):
            if entry.name != LOCK_FILE:
                path = Path(entry.path)
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    if (out / MARKER).exists():
        return
    (out / "solutions").mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO_ROOT / "solutions" / ASSIGNMENT, out / "solutions" / ASSIGNMENT,
                    dirs_exist_ok=True)
    nbgrader("generate_assignment", ASSIGNMENT, "--force", course_root=out)
    (out / MARKER).write_text("made by python -m autograder demo\n")  # last: the release exists


def refuse(out, student, reason):
    """Records a student who cannot be graded: FAILED with the reason, and a gradebook row so
    that nbgrader's export lists them too (unless the name itself is the problem: nbgrader's
    CSV export would break a row on a newline)."""
    from nbgrader.api import Gradebook

    if collect.name_problem(student) is None:
        with Gradebook(gradebook.db_url(out)) as book:
            book.update_or_create_student(student)
    result = {"student": student, "status": "failed", "reason": reason, "graded": False,
              "seconds": 0.0, "attempts": 0}
    write_result(out, result)
    return result


def submissions_to_grade(out, submissions, students, regrade):
    """Collects the students without a result (all with `regrade`); refuses the ungradable."""
    done = {} if regrade else report.read_results(out, students)
    queue = []
    for student in students:
        if student in done:
            continue
        problem = collect.name_problem(student)
        if problem is None:
            shutil.rmtree(out / "submitted" / student, ignore_errors=True)  # our old copy
            refusals = collect.collect_student(submissions, student, out)
            problem = collect.submission_problem(refusals, out, student)
        if problem is None:
            queue.append(student)
        else:
            refuse(out, student, problem)
    return done, queue


def outcome(out, student, future):
    """The student's result; an exception in our own code is a grader error, never a 0."""
    try:
        return future.result()
    except Exception as error:  # noqa: BLE001 - reported in the table, the class goes on
        result = {"student": student, "status": "grader error", "graded": False,
                  "reason": f"{type(error).__name__}: {error}", "seconds": 0.0, "attempts": 1}
        write_result(out, result)
        return result


def grade_all(out, queue, jobs):
    """Grades `queue`, `jobs` at a time; on Ctrl-C stops the running students cleanly.
    Returns ({student: result} of those finished, interrupted?)."""
    stopping = threading.Event()
    running = []

    def on_start(process):
        running.append(process)
        if stopping.is_set():
            stop(process)

    finished = {}
    pool = ThreadPoolExecutor(max_workers=jobs)
    futures = {pool.submit(grade_student, out, student, None, on_start, stopping): student
               for student in queue}
    try:
        for future in tqdm(as_completed(futures), total=len(futures), unit="submission"):
            finished[futures[future]] = outcome(out, futures[future], future)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup
        stopping.set()
        for future in futures:
            future.cancel()
        live = [process for process in running if process.poll() is None]
        try:  # the terminal may be gone (a closed pipe): stopping must go on regardless
            print(f"\nInterrupted: cancelled the queued students, stopping the {len(live)} "
                  "being graded ...", file=sys.stderr)
        except OSError:
            pass
        stoppers = [threading.Thread(target=stop, args=(process,)) for process in live]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        pool.shutdown(wait=True)
        for future, student in futures.items():
            if future.done() and not future.cancelled():
                finished[student] = outcome(out, student, future)
        return {student: result for student, result in finished.items() if result}, True
    pool.shutdown(wait=True)
    return finished, False


def run(arguments):
    """Grades `arguments.submissions` into `arguments.out` (see the module's docstring)."""
    try:
        students = collect.student_folders(arguments.submissions)
    except SubmissionsError as error:
        raise SystemExit(str(error)) from None
    out = Path(arguments.out).resolve()
    check_out(out)

    if sandbox.mode() == "off":
        print("WARNING: AUTOGRADER_SANDBOX=off: student code runs UNPROTECTED.")
    else:
        try:
            sandbox.check_available()
        except sandbox.SandboxUnavailableError as error:
            raise SystemExit(f"Cannot grade with protection: {error}. Run as root on Linux, "
                             "or set AUTOGRADER_SANDBOX=off to grade unprotected.") from error
    # Ctrl-C, and a batch system's SIGTERM, stop the run cleanly (even when started with
    # SIGINT ignored, as a shell does for a background job)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # the profile that grades (quick without a GPU), decided once for the class: each student's
    # grading process would otherwise start TensorFlow only to ask for a GPU
    if not os.environ.get("DIFFUSION_PROFILE"):
        quiet_tensorflow_startup(probe_gpus=True)  # its start-up notices would open the output
    os.environ["DIFFUSION_PROFILE"] = default_profile()
    try:
        with course_lock(out):
            return grade_class(out, Path(arguments.submissions), students, arguments)
    except LockedError as error:
        raise SystemExit(str(error)) from None
    except KeyboardInterrupt:
        print("Interrupted before grading began; nothing graded was lost.", file=sys.stderr)
        return 130


def grade_class(out, submissions, students, arguments):
    prepare_course_folder(out, arguments.force)
    done, queue = submissions_to_grade(out, submissions, students, arguments.regrade)
    if done:
        print(f"Resuming: {len(done)} of {len(students)} students already have a result in "
              f"{out} (--regrade grades them again, --force starts a fresh class).")
    print(f"Grading {len(queue)} submissions with {arguments.jobs} job(s) in {out}")
    finished, interrupted = grade_all(out, queue, arguments.jobs)

    results = report.read_results(out, students)
    missing = [student for student in students if student not in results]
    for student in missing:
        results[student] = {"student": student, "status": "not graded", "graded": False,
                            "reason": "the run was interrupted", "seconds": 0.0}
    header, rows = report.write_reports(out, [results[student] for student in students],
                                        gradebook.db_url(out))
    print(similarity_report.write_similarity_report(out, submissions))
    scan = scanner.scan_folder(submissions)
    (out / "scan_report.md").write_text(scanner.format_report(scan))
    flagged = [student for student, findings in scan.items() if findings]
    print(f"Scanner: {len(flagged)} submission(s) flagged for manual review: "
          f"{', '.join(map(repr, flagged)) or 'none'} (see scan_report.md)")
    report.export_grades(out, header, rows,
                         lambda path: nbgrader("export", f"--to={path}", course_root=out))
    run_nbgrader(["generate_feedback", ASSIGNMENT, "--force"], out)
    print(f"Wrote {out / 'grade_table.csv'} (per cell), {out / report.GRADES_CSV} (nbgrader's "
          f"export of the graded students), {out / report.LEFT_OUT_CSV}, feedback in "
          f"{out / 'feedback'}.")
    seconds = [result["seconds"] for result in finished.values()]
    if seconds:
        print(f"Wall time per submission: mean {sum(seconds) / len(seconds):.1f} s, "
              f"max {max(seconds):.1f} s")
    if interrupted:
        print(f"Interrupted: {len(missing)} student(s) not graded. To grade them, run again:\n"
              f"  python -m autograder grade --submissions {shlex.quote(str(submissions))} "
              f"--out {shlex.quote(str(out))}",
              file=sys.stderr)
        return 130
    return 0
