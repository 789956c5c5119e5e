"""Grading a class on a real one-node Slurm cluster into a real PostgreSQL gradebook.

The servers come from scripts/services/ (Debian packages postgresql, slurm-wlm and munge; root).
One job array grades three sample submissions; one task is cancelled midway and re-submitted.
"""

import csv
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autograder import sandbox
from autograder.cluster import records, slurm
from autograder.cluster.status import class_status
from autograder.samples import catalogue

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVICES = REPO_ROOT / "scripts" / "services"
# one that nbgrader fails, one attack, one that is graded twice (its first task cancelled)
REFUSED = "cheat-symlinks-solution"  # refused while it is copied in: never a task
STUDENTS = ["broken-invalid-json", "cheat-reads-solutions", "correct", REFUSED]
GRADED = [student for student in STUDENTS if student != REFUSED]
VICTIM = "correct"  # its task is cancelled midway, then re-submitted
LOCK_ERRORS = ("database is locked", "deadlock detected", "could not serialize",
               "UniqueViolation", "IntegrityError")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(map(shutil.which, ["slurmctld", "munged", "pg_ctlcluster"])),
    reason="needs root and the Debian packages postgresql, slurm-wlm and munge "
           "(.ci/apt-packages.txt)")


def service(name):
    """Starts scripts/services/<name>.sh (stopping it afterwards only if it was not running)."""
    script = str(SERVICES / f"{name}.sh")
    was_running = subprocess.run([script, "env"], capture_output=True).returncode == 0
    started = time.perf_counter()
    output = subprocess.run([script, "start"], capture_output=True, text=True, check=True,
                            timeout=120).stdout
    settings = dict(line.removeprefix("export ").split("=", 1) for line in output.splitlines())
    return settings, time.perf_counter() - started, (lambda: None) if was_running else (
        lambda: subprocess.run([script, "stop"], check=True, timeout=120))


@pytest.fixture(scope="module")
def servers():
    """PostgreSQL (a fresh database) and Slurm, their settings in os.environ."""
    postgres, postgres_seconds, stop_postgres = service("postgres")
    cluster, slurm_seconds, stop_slurm = service("slurm")
    assert postgres_seconds < 30 and slurm_seconds < 30, "a service took too long to start"
    database = f"cluster_test_{os.getpid()}"
    admin = [shutil.which("psql") or "psql", "-h", "127.0.0.1", "-p",
             postgres["NBGRADER_DB_URL"].rsplit(":", 1)[1].split("/")[0], "-U", "autograder",
             "-d", "postgres", "-c"]
    environment = {"PGPASSFILE": postgres["PGPASSFILE"]}
    subprocess.run([*admin, f"CREATE DATABASE {database}"], check=True,
                   env={**os.environ, **environment}, capture_output=True)
    # a generous cell timeout: no sample here loops, and a loaded machine must not turn the
    # setup cell's TensorFlow import into a grader error
    settings = {**environment, **cluster, "PYTHONPATH": str(REPO_ROOT),
                "NBGRADER_DB_URL": postgres["NBGRADER_DB_URL"].rsplit("/", 1)[0]
                + f"/{database}", "DDIM_CELL_TIMEOUT": "120"}
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    yield settings
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name)
        else:
            os.environ[name] = value
    subprocess.run([*admin, f"DROP DATABASE IF EXISTS {database}"],
                   env={**os.environ, **environment}, capture_output=True)
    stop_slurm()
    stop_postgres()


def cluster(*arguments):
    """`python -m autograder.cluster ...` with this venv's interpreter, the venv not activated
    (PATH without its bin folder): the tasks must still run with this interpreter."""
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(folder for folder in os.environ["PATH"].split(os.pathsep)
                           if folder != venv_bin)
    result = subprocess.run([sys.executable, "-m", "autograder.cluster", *arguments],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PATH": path})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def wait_until(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def settled(course):
    table = class_status(course)
    return table if all(row["state"] not in ("running", "pending")
                        for row in table.values()) else None


def gradebook_rows(query):
    import psycopg

    url = os.environ["NBGRADER_DB_URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as connection:
        return connection.execute(query).fetchall()


@pytest.fixture(scope="module")
def graded_class(servers, tmp_path_factory):
    """Three students through the job array; the victim's task cancelled midway, re-submitted."""
    submissions = tmp_path_factory.mktemp("submissions")
    for student in STUDENTS:
        shutil.copytree(catalogue.SUBMISSIONS / student, submissions / student,
                        symlinks=True)
    course = tmp_path_factory.mktemp("cluster") / "course"
    started = time.perf_counter()
    submitted = cluster("submit", "--course", str(course), "--submissions", str(submissions),
                        "--max-parallel", "2")
    # the refused folder is named at once, with its reason, not first in `status`
    assert "Refused, not submitted (1 folder(s)): 'cheat-symlinks-solution': " in submitted
    assert "ddim.ipynb is a symbolic link" in submitted

    def victim_running():
        record = records.read_task(course, VICTIM)
        return record and record["state"] == "running"
    wait_until(victim_running, 900, f"{VICTIM}'s task to start")
    time.sleep(5)  # midway: its kernel is grading
    victim_task = class_status(course)[VICTIM]["task"]
    slurm.cancel(victim_task)
    after_cancel = wait_until(lambda: settled(course), 1800, "the first array to finish")
    status_after_cancel = cluster("status", "--course", str(course))
    resubmitted = cluster("submit", "--course", str(course))
    after_resubmit = wait_until(lambda: settled(course), 900, "the re-submission to finish")
    again = cluster("submit", "--course", str(course))
    collected = cluster("collect", "--course", str(course))
    print(f"cluster grading of {len(STUDENTS)} students: {time.perf_counter() - started:.0f} s")
    return {"course": course, "after_cancel": after_cancel, "after_resubmit": after_resubmit,
            "resubmitted": resubmitted, "again": again, "collected": collected,
            "victim_task": victim_task, "status_after_cancel": status_after_cancel}


def test_a_cancelled_task_is_failed_with_slurms_reason(graded_class):
    after_cancel = graded_class["after_cancel"]
    assert after_cancel[VICTIM]["state"] == "failed", after_cancel[VICTIM]
    assert after_cancel[VICTIM]["reason"].startswith("CANCELLED"), after_cancel[VICTIM]
    assert after_cancel[VICTIM]["task"] == graded_class["victim_task"]
    victim_line = next(line for line in graded_class["status_after_cancel"].splitlines()
                       if line.startswith(VICTIM))
    assert "failed" in victim_line and "CANCELLED" in victim_line, victim_line
    assert f"{len(STUDENTS) - 1} done, 0 running, 0 pending, 1 failed, 0 missing" in graded_class[
        "status_after_cancel"]
    others = {student: row["state"] for student, row in after_cancel.items()
              if student != VICTIM}
    assert others == dict.fromkeys(others, "done"), after_cancel


def test_a_resubmission_grades_only_the_missing_student_and_twice_adds_nothing(graded_class):
    course = graded_class["course"]
    runs = records.runs(course)
    assert [run["students"] for _, run in runs] == [GRADED, [VICTIM]]
    after = graded_class["after_resubmit"]
    assert {row["state"] for row in after.values()} == {"done"}, after
    assert "Nothing to submit" in graded_class["again"]
    # one submission per student in the gradebook, and one grade per graded cell
    submissions = gradebook_rows(
        "SELECT student.id, COUNT(*) FROM submitted_assignment JOIN student "
        "ON student.id = submitted_assignment.student_id GROUP BY student.id")
    assert dict(submissions) == dict.fromkeys(GRADED, 1)
    cells_per_student = gradebook_rows(
        "SELECT submitted_assignment.student_id, base_cell.name, COUNT(*) FROM grade "
        "JOIN base_cell ON grade.cell_id = base_cell.id "
        "JOIN submitted_notebook ON grade.notebook_id = submitted_notebook.id "
        "JOIN submitted_assignment ON submitted_notebook.assignment_id = submitted_assignment.id "
        "GROUP BY submitted_assignment.student_id, base_cell.name")
    graded_cells = len(catalogue.POINTS) + 1  # and the written summary
    assert sorted(cells_per_student) == sorted(
        (student, cell, 1) for student in GRADED for cell in
        {cell for _, cell, _ in cells_per_student}), cells_per_student
    assert len(cells_per_student) == graded_cells * len(GRADED)


def test_the_job_array_gives_the_local_grades(graded_class):
    course = graded_class["course"]
    with open(course / "grade_table.csv") as table:
        rows = {row["student"]: row for row in csv.DictReader(table)}
    assert set(rows) == set(STUDENTS)
    for student in STUDENTS:
        expected = catalogue.EXPECTED_SCORES[student]
        if expected is None:
            reason = catalogue.EXPECTED_FAILURES[student]
            assert rows[student]["status"].startswith("FAILED") and reason in rows[student][
                "status"], rows[student]
            continue
        assert rows[student]["status"] == "ok", rows[student]
        got = {cell: float(rows[student][cell]) for cell in expected}
        assert got == {cell: float(points) for cell, points in expected.items()}, student
    with open(course / "failures.csv") as failures:
        failed = {row["student"]: row for row in csv.DictReader(failures)}
    assert set(failed) == {"broken-invalid-json", "cheat-symlinks-solution"}
    assert failed["broken-invalid-json"]["state"] == "done"  # graded: the student's fault
    # the reason itself, in every file, not "see the log"
    assert "the notebook is not valid JSON" in failed["broken-invalid-json"]["reason"]
    # nbgrader's export gives a failed student 0.0: they are left out of it, listed beside it
    with open(course / "grades.csv") as exported:
        assert {row["student_id"] for row in csv.DictReader(exported)} == {
            "cheat-reads-solutions", "correct"}
    with open(course / "grades_left_out.csv") as left_out:
        reasons = {row["student"]: row["status"] for row in csv.DictReader(left_out)}
    assert set(reasons) == {"broken-invalid-json", "cheat-symlinks-solution"}
    assert "not valid JSON" in reasons["broken-invalid-json"]
    assert (course / "feedback" / "correct" / "ddim" / "ddim.html").exists()
    with open(course / "similarity.csv") as file:
        flagged = {row["first"] for row in csv.DictReader(file)
                   if row["kind"] == "solution" and row["flagged"] == "yes"}
    assert flagged == {"correct"}
    assert "the notebook is not valid JSON" in (course / "similarity.html").read_text()


def test_no_task_met_a_lock_or_duplicate_error(graded_class):
    course = graded_class["course"]
    logs = [*records.folder(course, "logs").iterdir(), *(course / "logs").iterdir()]
    texts = [path.read_text(errors="replace") for path in logs]
    assert len(texts) >= len(STUDENTS)
    for error in LOCK_ERRORS:
        assert not any(error in text for text in texts), error


def write_grades(url, student, barrier, errors):
    """One grading task's write: its submission and scores through nbgrader's gradebook API."""
    from nbgrader.api import Gradebook

    try:
        with Gradebook(url, "default_course") as book:
            barrier.wait()  # every writer writes at the same moment
            book.update_or_create_student(student)
            book.add_submission("concurrency", student)
            for grade in book.find_submission("concurrency", student).notebooks[0].grades:
                grade.auto_score = len(student) % (grade.max_score + 1)
            book.db.commit()
    except Exception as error:  # noqa: BLE001 - the test reports every writer's error
        errors.append(f"{student}: {type(error).__name__}: {error}")


def test_simultaneous_writers_lose_no_grade(servers):
    from nbgrader.api import Gradebook

    url = servers["NBGRADER_DB_URL"]
    with Gradebook(url, "default_course") as book:
        book.update_or_create_assignment("concurrency", course_id="default_course")
        book.add_notebook("exercise", "concurrency")
        for name, points in catalogue.POINTS.items():
            book.add_grade_cell(name, "exercise", "concurrency", max_score=points,
                                cell_type="code")
    students = [f"student-{number:02d}-{'x' * number}" for number in range(16)]
    # threads, each with its own connection: the server sees 16 simultaneous transactions
    barrier = threading.Barrier(len(students))
    errors = []
    writers = [threading.Thread(target=write_grades, args=(url, student, barrier, errors))
               for student in students]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(300)
    assert not errors and not any(writer.is_alive() for writer in writers), errors
    with Gradebook(url, "default_course") as book:
        for student in students:
            grades = book.find_submission("concurrency", student).notebooks[0].grades
            assert sorted(grade.auto_score for grade in grades) == sorted(
                len(student) % (points + 1) for points in catalogue.POINTS.values())


@pytest.mark.skipif(sandbox.mode() == "off", reason="the sandbox is off")
def test_student_code_cannot_reach_the_gradebook_server(servers, tmp_path):
    """A raw TCP connect, not psycopg: the sandbox clears the environment, so psycopg would fail
    for want of a password even if the network were open."""
    assert "@" in servers["NBGRADER_DB_URL"] and ":" not in servers["NBGRADER_DB_URL"].split(
        "//")[1].split("@")[0], "the URL must not hold the password"
    host, port = servers["NBGRADER_DB_URL"].split("@")[1].split("/")[0].rsplit(":", 1)
    socket.create_connection((host, int(port)), timeout=5).close()  # it listens, seen from here
    probe = f"""
import socket
try:
    socket.create_connection(({host!r}, {int(port)}), timeout=5)
    print("CONNECTED")
except OSError as error:
    print("refused", error)
"""
    result = subprocess.run([sys.executable, "-m", "autograder.sandbox", "run", "--write",
                             str(tmp_path), "--", sys.executable, "-c", probe], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert "CONNECTED" not in result.stdout, "student code reached the gradebook server"
    assert result.returncode == 0 and "refused" in result.stdout, result.stderr[-2000:]
