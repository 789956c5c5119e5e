"""Wall time of autograding one submission, all hidden tests included (the KID run too), before
and after: the code of a git revision (default `main`) against this working tree, in one run.

    python benchmarks/autograde_speed.py [--students correct,untouched,...|all] [--baseline REV]
                                         [--jobs N]

Each sample submission is graded by `python -m autograder demo --jobs 1` with each code (the
baseline exported with `git archive` into a temporary folder), alternately, so that both see the
same load on a shared machine; the time is nbgrader's, per submission, from the demo's grade
table. Each code first grades `correct` once, untimed, to fill its own cache of the reference
and untrained runs, as on a grading machine after the first student. It prints the seconds per
submission of both and their ratio. With `--jobs N` (N > 1) each code grades all the students
in one demo run with N jobs instead, and the figure is that run's wall time over the number of
students (the demo's fixed steps, release and reports, included). Run it with `nice` on a
shared machine.
"""

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SUBMISSIONS = REPO_ROOT / "autograder" / "samples" / "submissions"
TARGET_S = {1: 10, 2: 6}  # seconds per submission at --jobs 1 and 2, on this 2-core CPU


def export_revision(revision, folder):
    """The files of `revision` in `folder` (a plain tree, no .git)."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", revision], cwd=REPO_ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def grade_seconds(code_root, student, scratch, cache):
    """Seconds nbgrader took to autograde `student` with the code in `code_root`."""
    submissions = scratch / f"submissions-{student}"
    if not submissions.exists():
        shutil.copytree(SUBMISSIONS / student, submissions / student)
    out = scratch / f"course-{code_root.name}-{student}-{time.monotonic_ns()}"
    environment = {**os.environ, "PYTHONPATH": str(code_root),
                   "DIFFUSION_GRADER_CACHE": str(cache)}
    subprocess.run([sys.executable, "-m", "autograder.demo", "--jobs", "1", "--submissions",
                    str(submissions), "--out", str(out)], check=True, cwd=code_root,
                   env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (row,) = graded_rows(out, code_root)
    shutil.rmtree(out, ignore_errors=True)
    return float(row["seconds"])


def graded_rows(out, code_root):
    """The run's grade table; a grader error stops the benchmark (its time means nothing)."""
    with open(out / "grade_table.csv") as table:
        rows = list(csv.DictReader(table))
    faults = [row["student"] for row in rows if "grader error" in row["status"]]
    if faults:
        raise SystemExit(f"the code in {code_root} failed to grade {faults} with a grader "
                         "error; grade them with `python -m autograder demo` to see why")
    return rows


def class_seconds(code_root, students, scratch, cache, jobs):
    """Wall seconds per submission of one demo run that grades all `students` with `jobs`."""
    submissions = scratch / f"class-{code_root.name}-{time.monotonic_ns()}"
    for student in students:
        shutil.copytree(SUBMISSIONS / student, submissions / student)
    out = scratch / f"course-{code_root.name}-class-{time.monotonic_ns()}"
    environment = {**os.environ, "PYTHONPATH": str(code_root),
                   "DIFFUSION_GRADER_CACHE": str(cache)}
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "autograder.demo", "--jobs", str(jobs),
                    "--submissions", str(submissions), "--out", str(out)], check=True,
                   cwd=code_root, env=environment, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    seconds = (time.monotonic() - started) / len(students)
    graded_rows(out, code_root)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", default="all",
                        help="comma-separated sample submissions, or all (the default)")
    parser.add_argument("--baseline", default="main", help="the git revision to compare with")
    parser.add_argument("--jobs", type=int, default=1,
                        help="1: each submission alone; N > 1: the class in one run, N jobs")
    arguments = parser.parse_args()
    students = (sorted(path.name for path in SUBMISSIONS.iterdir() if path.is_dir())
                if arguments.students == "all" else arguments.students.split(","))

    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        codes = {"before": export_revision(arguments.baseline, scratch / "before"),
                 "after": REPO_ROOT}
        caches = {name: scratch / f"cache-{name}" for name in codes}
        for name, code in codes.items():  # fills each code's reference and untrained cache
            grade_seconds(code, "correct", scratch, caches[name])
        if arguments.jobs > 1:
            per_submission = {name: class_seconds(code, students, scratch, caches[name],
                                                  arguments.jobs) for name, code in codes.items()}
            print(f"{len(students)} submissions in one run, --jobs {arguments.jobs}: before "
                  f"({arguments.baseline}) {per_submission['before']:.1f} s per submission, after "
                  f"(this tree) {per_submission['after']:.1f} s; after/before = "
                  f"{per_submission['after'] / per_submission['before']:.2f} (target <= "
                  f"{TARGET_S.get(arguments.jobs, '?')} s)")
            return
        seconds = {name: {} for name in codes}
        print(f"{'student':48s} {'before':>7s} {'after':>7s}  (seconds per submission)",
              flush=True)
        for student in students:
            for name, code in codes.items():
                seconds[name][student] = grade_seconds(code, student, scratch, caches[name])
            print(f"{student:48s} {seconds['before'][student]:7.0f} "
                  f"{seconds['after'][student]:7.0f}", flush=True)

    means = {name: sum(values.values()) / len(values) for name, values in seconds.items()}
    print(f"mean per submission over {len(students)} submissions, --jobs 1: before "
          f"({arguments.baseline}) {means['before']:.1f} s, after (this tree) "
          f"{means['after']:.1f} s; after/before = {means['after'] / means['before']:.2f} "
          f"(target <= {TARGET_S[1]} s on a quiet 2-core CPU)")


if __name__ == "__main__":
    main()
