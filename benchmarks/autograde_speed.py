"""Wall time of autograding one submission, all hidden tests included (the KID run too).

    python benchmarks/autograde_speed.py [--students correct,untouched,...] [--jobs 1]

It grades the chosen sample submissions with `python -m autograder.demo` (quick profile on a
CPU; the full profile where a GPU makes it the default) and prints the seconds per submission.
The first submission pays for the grader's reference and untrained-model runs, which are cached
for the rest: run it twice to see both (`--fresh-cache` forces a cold start).
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
SUBMISSIONS = REPO_ROOT / "autograder" / "submissions"


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", default="correct,untouched,mistake-sampler-step-off-by-one")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--fresh-cache", action="store_true")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        chosen = Path(scratch) / "submissions"
        for student in arguments.students.split(","):
            shutil.copytree(SUBMISSIONS / student, chosen / student)
        environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        if arguments.fresh_cache:
            environment["DIFFUSION_GRADER_CACHE"] = str(Path(scratch) / "cache")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "autograder.demo", "--jobs", str(arguments.jobs),
                        "--submissions", str(chosen), "--out", str(Path(scratch) / "course")],
                       check=True, cwd=REPO_ROOT, env=environment, stdout=subprocess.DEVNULL)
        total = time.perf_counter() - started
        with open(Path(scratch) / "course" / "grade_table.csv") as table:
            rows = list(csv.DictReader(table))

    print(f"{'student':48s} seconds")
    for row in rows:
        print(f"{row['student']:48s} {row['seconds']}")
    seconds = [float(row["seconds"]) for row in rows]
    print(f"per submission: mean {sum(seconds) / len(seconds):.1f} s, max {max(seconds):.1f} s "
          f"(target <= 60 s); whole run {total:.0f} s with {arguments.jobs} job(s), "
          "release generation and export included")


if __name__ == "__main__":
    main()
