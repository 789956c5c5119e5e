"""Grade a class on a Slurm cluster: one job-array task per student, a PostgreSQL gradebook.

    python -m autograder.cluster submit  --course DIR [--submissions DIR] [--max-parallel K]
                                         [--sbatch=OPTION]... [--regrade-all]
    python -m autograder.cluster status  --course DIR
    python -m autograder.cluster collect --course DIR

submit   makes the course folder on the first call (the release, the students' notebooks), then
         submits autograder/cluster/grade.sbatch as `sbatch --array=0-(N-1)%K`, one task per
         student that is not done, running or pending: re-submitting fills in only the missing
         and failed students.
status   done / running / pending / failed / missing per student, with Slurm's reason.
collect  the grade table (grade_table.csv), failures.csv with reasons, the similarity report
         (similarity.html, similarity.csv), nbgrader's grades.csv and the HTML feedback.
task     (run by grade.sbatch on a compute node) grades student number $SLURM_ARRAY_TASK_ID.

The course folder must be on a file system that the nodes share; NBGRADER_DB_URL names the
PostgreSQL gradebook (autograder/grading/gradebook.py).
"""

import argparse
import csv
import os
import socket
import sys
import time
from pathlib import Path

from autograder import sandbox
from autograder.cluster import records, slurm
from autograder.cluster.status import class_status, print_status, summary
from autograder.grading import demo, gradebook, report
from autograder.grading.grade_student import grade_student, run_nbgrader
from autograder.grading.run_lock import LockedError, course_lock
from autograder.intake import collect
from autograder.similarity import report as similarity_report

REPO_ROOT = Path(__file__).resolve().parents[2]


def require_shared_gradebook(course_root):
    url = gradebook.db_url(course_root)
    if not gradebook.is_shared_server(url):
        raise SystemExit(
            f"The gradebook is {url}: many tasks on many nodes cannot share sqlite (it fails "
            f"with 'database is locked' on network file systems). Set "
            f"{gradebook.DB_URL_VARIABLE}=postgresql+psycopg://USER@HOST:PORT/DATABASE "
            "(scripts/services/postgres.sh starts a server for trials).")


def prepare_course(course_root, submissions):
    """The course folder on the first submit: the release, and every student's notebooks
    copied in as regular files (students that cannot be graded get their reason at once)."""
    if submissions is None:
        raise SystemExit(f"{course_root} has no class yet: give --submissions DIR, a folder "
                         "with one subfolder of notebooks per student.")
    try:
        students = collect.student_folders(submissions)
    except collect.SubmissionsError as error:
        raise SystemExit(str(error)) from None
    demo.check_out(course_root)
    try:
        with course_lock(course_root):
            demo.prepare_course_folder(course_root, force=False)
            demo.submissions_to_grade(course_root, Path(submissions), students, regrade=False)
    except LockedError as error:
        raise SystemExit(str(error)) from None
    records.write_class(course_root, Path(submissions).resolve(), students)


def submit(arguments):
    course_root = Path(arguments.course).resolve()
    require_shared_gradebook(course_root)
    if records.class_students(course_root) is None:
        prepare_course(course_root, arguments.submissions)
    table = class_status(course_root)
    refused = {student for student, row in table.items() if row["task"] == ""
               and row["state"] == "done"}
    todo = [student for student, row in table.items()
            if row["state"] not in ("running", "pending") and student not in refused
            and (arguments.regrade_all or row["state"] != "done")]
    if refused:
        print(f"Refused, not submitted ({len(refused)} folder(s)): " + "; ".join(
            f"{student!r}: {table[student]['reason']}" for student in sorted(refused)))
    if not todo:
        print(f"Nothing to submit: {summary(table)}.")
        return None
    run = records.new_run(course_root, todo)
    try:
        job_id = slurm.submit_array(
            len(todo), min(arguments.max_parallel, len(todo)), [str(course_root), run],
            records.folder(course_root, "logs"), REPO_ROOT, arguments.sbatch)
    except slurm.SlurmError:
        records.forget_run(course_root, run)
        raise
    records.set_job_id(course_root, run, job_id)
    print(f"Submitted job array {job_id}: {len(todo)} student(s), at most "
          f"{arguments.max_parallel} at once. Follow it with: python -m autograder.cluster "
          f"status --course {course_root}")
    return job_id


def task(arguments):
    """Grades one student on a compute node: the same grading as the local path."""
    course_root = Path(arguments.course).resolve()
    index = int(os.environ["SLURM_ARRAY_TASK_ID"])
    student = records.run_students(course_root, arguments.run)[index]
    task_id = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{index}"
    host = socket.gethostname()
    records.write_task(course_root, student, task=task_id, state="running", host=host,
                       started=time.time())
    try:
        if sandbox.mode() != "off":
            sandbox.check_available()  # a node that cannot confine student code grades nobody
        result = grade_student(course_root, student)  # retries a grader fault once
    except sandbox.SandboxUnavailableError as error:
        result = {"status": "grader error", "reason": f"no sandbox on {host}: {error}"}
    if result["status"] == "grader error":
        records.write_task(course_root, student, task=task_id, state="grader error",
                           reason=result["reason"], host=host)
        raise SystemExit(f"{student!r}: grader error: {result['reason']}")
    records.write_task(course_root, student, task=task_id, state="graded", host=host)
    print(f"{student!r}: {report.status_text(result)} ({result['seconds']:.0f} s)")


def status(arguments):
    print_status(class_status(Path(arguments.course).resolve()))


def collect_class(arguments):
    """The grade table, the failures with reasons, the similarity report, nbgrader's CSV export
    and the feedback."""
    course_root = Path(arguments.course).resolve()
    table = class_status(course_root)
    results = report.read_results(course_root, list(table))
    for student, row in table.items():
        if row["state"] != "done":
            results[student] = {"student": student, "status": "not graded", "graded": False,
                                "reason": f"{row['state']}: {row['reason']}", "seconds": 0.0}
    header, rows = report.write_reports(course_root, [results[student] for student in table],
                                        gradebook.db_url(course_root))
    with open(course_root / "failures.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["student", "state", "task", "reason"])
        writer.writerows([student, row["state"], row["task"], row["reason"]]
                         for student, row in table.items() if row["reason"])
    submissions = records.class_submissions(course_root)
    print(similarity_report.write_similarity_report(
        course_root, submissions if submissions.is_dir() else None))
    report.export_grades(course_root, header, rows, lambda path: demo.nbgrader(
        "export", f"--to={path}", course_root=course_root))
    run_nbgrader(["generate_feedback", demo.ASSIGNMENT, "--force"], course_root)
    print(f"{summary(table)}. Wrote grade_table.csv, failures.csv, similarity.html and .csv, "
          f"grades.csv (the graded students), {report.LEFT_OUT_CSV} and feedback/ in "
          f"{course_root}.")
    unfinished = [student for student, row in table.items() if row["state"] != "done"]
    if unfinished:
        print(f"Not graded yet: {', '.join(map(repr, unfinished))}. Re-submit them with: "
              f"python -m autograder.cluster submit --course {course_root}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder.cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("submit", "status", "collect"):
        command = commands.add_parser(name)
        command.add_argument("--course", required=True,
                             help="the course folder, on a file system the nodes share")
    commands.choices["submit"].add_argument(
        "--submissions", help="a folder with one subfolder of notebooks per student "
                              "(needed the first time only)")
    commands.choices["submit"].add_argument(
        "--max-parallel", type=int, default=8, help="K: tasks running at once (default 8)")
    commands.choices["submit"].add_argument(
        "--sbatch", action="append", default=[], metavar="OPTION",
        help="an sbatch option overriding grade.sbatch's, e.g. --sbatch=--partition=gpu")
    commands.choices["submit"].add_argument(
        "--regrade-all", action="store_true", help="grade the done students again too")
    run_task = commands.add_parser("task", help="(grade.sbatch runs it on a compute node)")
    run_task.add_argument("course")
    run_task.add_argument("run")
    arguments = parser.parse_args(argv)
    if arguments.command == "submit" and arguments.max_parallel < 1:
        parser.error(f"--max-parallel must be at least 1, got {arguments.max_parallel}")
    if arguments.command in ("submit", "task") and sandbox.mode() == "off":
        print("WARNING: AUTOGRADER_SANDBOX=off: student code runs UNPROTECTED.")
    try:
        {"submit": submit, "status": status, "collect": collect_class, "task": task}[
            arguments.command](arguments)
    except slurm.SlurmError as error:
        raise SystemExit(str(error)) from error
    return 0


if __name__ == "__main__":
    sys.exit(main())
