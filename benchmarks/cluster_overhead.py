"""What grading a class on Slurm costs beyond the grading itself: scheduler and gradebook overhead.

    eval "$(scripts/services/postgres.sh start)"; eval "$(scripts/services/slurm.sh start)"
    nice python benchmarks/cluster_overhead.py [--students 200] [--grading-seconds 300]

Submits a simulated class through the local Slurm as one job array, the way
`python -m autograder.cluster submit` does (slurm.submit_array): one task per student, at most K
at once (K = the node's CPUs, one per task). Each task is a stand-in for grading: no notebook and
no training, but it writes the student's real grades through nbgrader's gradebook API into the
PostgreSQL server of NBGRADER_DB_URL (in a database of its own, dropped at the end).

Reported per student (seconds):
- scheduler: the slot time a student costs beyond its own task (queueing, launch, clean-up):
  (K x makespan - sum of task run times) / N;
- task start: from the task's shell to Python with the cluster module loaded (nbgrader's own
  start is part of grading, paid on one machine too);
- gradebook write: one student's write transaction, under the array's concurrency, against the
  same write alone (contention), with lock or duplicate errors and lost grades counted.
Then the wall time of 300 students x --grading-seconds (per-student grading on one GPU) at K GPUs.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from autograder.cluster import slurm  # noqa: E402
from autograder.grading.gradebook import DB_URL_VARIABLE  # noqa: E402

ASSIGNMENT = "benchmark"
CELLS = {"test_diffusion_schedule": 3, "test_denoise": 3, "test_reverse_diffusion": 4,
         "test_training_kid": 5}
STAND_IN = """#!/bin/bash
#SBATCH --job-name=grading-stand-in
#SBATCH --cpus-per-task=1
#SBATCH --mem=512M
#SBATCH --time=00:05:00
STARTED=$(date +%s.%N) exec python benchmarks/cluster_overhead.py task "$@"
"""


def scores(student):
    return {cell: (len(student) + index) % (points + 1)
            for index, (cell, points) in enumerate(CELLS.items())}


def write_grades(url, student):
    """What a grading task writes: the student, its submission and one score per cell."""
    from nbgrader.api import Gradebook

    started = time.perf_counter()
    with warnings.catch_warnings(), Gradebook(url, "default_course") as book:
        warnings.simplefilter("ignore")  # nbgrader's own SQLAlchemy autoflush warnings
        book.update_or_create_student(student)
        if book.find_student(student).submissions:
            book.remove_submission(ASSIGNMENT, student)
        book.add_submission(ASSIGNMENT, student)
        expected = scores(student)
        for grade in book.find_submission(ASSIGNMENT, student).notebooks[0].grades:
            grade.auto_score = expected[grade.name]
        book.db.commit()
    return time.perf_counter() - started


def task(folder, url):
    """One array task: the stand-in grading of student number $SLURM_ARRAY_TASK_ID."""
    # what a real task loads before it grades (`python -m autograder.cluster task`); nbgrader's
    # own imports are part of the grading, which the local path pays as well
    import autograder.cluster.__main__  # noqa: F401

    index = int(os.environ["SLURM_ARRAY_TASK_ID"])
    record = {"started": float(os.environ["STARTED"]), "ready": time.time(), "error": None}
    import nbgrader.api  # noqa: F401
    try:
        record["write_s"] = write_grades(url, f"student-{index:04d}")
    except Exception as error:  # noqa: BLE001 - counted and reported, never hidden
        record["error"] = f"{type(error).__name__}: {error}"
    record["finished"] = time.time()
    (Path(folder) / f"{index}.json").write_text(json.dumps(record))


def admin(url, statement):
    import psycopg

    server = url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(statement)


def prepare_gradebook(url):
    from nbgrader.api import Gradebook

    with Gradebook(url, "default_course") as book:
        book.update_or_create_assignment(ASSIGNMENT, course_id="default_course")
        book.add_notebook("ddim", ASSIGNMENT)
        for cell, points in CELLS.items():
            book.add_grade_cell(cell, "ddim", ASSIGNMENT, max_score=points, cell_type="code")


def lost_grades(url, students):
    """The students whose grades are missing or wrong in the gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    lost = []
    with Gradebook(url, "default_course") as book:
        for student in students:
            try:
                grades = book.find_submission(ASSIGNMENT, student).notebooks[0].grades
                if {grade.name: grade.auto_score for grade in grades} != scores(student):
                    lost.append(student)
            except MissingEntry:
                lost.append(student)
    return lost


def node_cpus():
    output = subprocess.run(["sinfo", "--noheader", "--format=%c"], capture_output=True,
                            text=True, check=True).stdout
    return int(output.split()[0].rstrip("+"))


def run(students, max_parallel, url, work):
    """Submits the stand-in array, waits for it; returns the tasks' records and the makespan."""
    script = work / "stand-in.sbatch"
    script.write_text(STAND_IN)
    records = work / "records"
    records.mkdir()
    submitted = time.time()
    job_id = slurm.submit_array(students, max_parallel, [str(records), url], work, REPO_ROOT,
                                script=script)
    while len(list(records.glob("*.json"))) < students:
        states = slurm.task_states(job_id)
        ended = [index for index, task in states.items()
                 if task.state not in slurm.WAITING | slurm.RUNNING]
        if len(ended) == students and len(list(records.glob("*.json"))) < students:
            raise SystemExit(f"some tasks ended without a record: see {work}/*.out")
        time.sleep(1)
    tasks = [json.loads((records / f"{index}.json").read_text()) for index in range(students)]
    return tasks, max(task["finished"] for task in tasks) - submitted


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--max-parallel", type=int, help="K (default: the node's CPUs)")
    parser.add_argument("--grading-seconds", type=float, default=300.0,
                        help="per-student grading time on one GPU, for the extrapolation "
                             "(default 300: the issue's 25 GPU-hours for 300 students)")
    parser.add_argument("--work", default=f"/tmp/cluster-overhead-{os.getpid()}")
    parser.add_argument("command", nargs="*", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.command[:1] == ["task"]:
        return task(*arguments.command[1:])

    base_url = os.environ.get(DB_URL_VARIABLE, "")
    if not base_url.startswith("postgresql"):
        raise SystemExit(f"Set {DB_URL_VARIABLE} to a PostgreSQL URL: eval \"$("
                         "scripts/services/postgres.sh start)\"")
    database = f"cluster_overhead_{os.getpid()}"
    url = f"{base_url.rsplit('/', 1)[0]}/{database}"
    max_parallel = arguments.max_parallel or node_cpus()
    work = Path(arguments.work)
    work.mkdir(parents=True)
    admin(base_url, f"CREATE DATABASE {database}")
    try:
        prepare_gradebook(url)
        alone = statistics.median(write_grades(url, f"alone-{n}") for n in range(5))
        tasks, makespan = run(arguments.students, max_parallel, url, work)
        lost = lost_grades(url, [f"student-{index:04d}" for index in range(len(tasks))])
    finally:
        admin(base_url, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    report(tasks, makespan, max_parallel, alone, lost, arguments.grading_seconds)


def report(tasks, makespan, max_parallel, alone, lost, grading_seconds):
    students = len(tasks)
    errors = [task["error"] for task in tasks if task["error"]]
    writes = sorted(task["write_s"] for task in tasks if not task["error"])
    task_seconds = sum(task["finished"] - task["started"] for task in tasks)
    scheduler = (max_parallel * makespan - task_seconds) / students
    start = statistics.mean(task["ready"] - task["started"] for task in tasks)
    write = statistics.mean(writes)
    overhead = scheduler + start + write
    print(f"{students} students, K = {max_parallel} at once: makespan {makespan:.1f} s")
    print(f"per student: scheduler {scheduler:.2f} s, task start {start:.2f} s, "
          f"gradebook write {write:.3f} s (p95 {writes[int(0.95 * (len(writes) - 1))]:.3f} s, "
          f"max {writes[-1]:.3f} s); overhead {overhead:.2f} s")
    print(f"DB write contention: {write / alone:.2f}x the write alone ({alone:.3f} s); "
          f"{len(errors)} write errors, {len(lost)} students with lost or wrong grades")
    for error in sorted(set(errors))[:5]:
        print(f"  error: {error}")
    print(f"overhead / grading time: {overhead / grading_seconds:.2%} of {grading_seconds:.0f} s "
          "per student (target < 5%)")
    print(f"300 students x {grading_seconds:.0f} s of grading each:")
    for gpus in sorted({1, 4, 8, 16, 32, max_parallel}):
        waves = math.ceil(300 / gpus)
        print(f"  K = {gpus:2d} GPUs: {waves * (grading_seconds + overhead) / 3600:5.2f} h "
              f"(grading alone {waves * grading_seconds / 3600:5.2f} h)")


if __name__ == "__main__":
    sys.exit(main())
