"""What a class's grading leaves on the shared file system, under <course>/cluster/.

    runs/0001.json        one submitted job array: its Slurm job id and its students, in task
                          order (task i grades students[i])
    results/<student>.json  what the student's latest task wrote: "running" when it started,
                          "graded" when it finished, with the submission's failure if any
    logs/<student>.log    nbgrader's log of that grading; logs/<job>_<task>.out: Slurm's output

Every file is written whole (a temporary file, then a rename), so a task killed midway leaves the
previous version, never half a file. The grades themselves are only in the gradebook.
"""

import json
import os
import time
from pathlib import Path

FOLDER = "cluster"


def folder(course_root, name):
    path = Path(course_root) / FOLDER / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path, data):
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1))
    os.replace(temporary, path)


def new_run(course_root, students):
    """Records a run of `students` before it is submitted; returns its name ("0003")."""
    runs = folder(course_root, "runs")
    number = max((int(path.stem) for path in runs.glob("[0-9]*.json")), default=0) + 1
    while True:
        name = f"{number:04d}"
        try:  # 'x': two instructors submitting at once never share a run
            with open(runs / f"{name}.json", "x") as run:
                json.dump({"job_id": None, "students": students, "submitted": time.time()},
                          run)
            return name
        except FileExistsError:
            number += 1


def set_job_id(course_root, name, job_id):
    path = folder(course_root, "runs") / f"{name}.json"
    write_json(path, {**json.loads(path.read_text()), "job_id": job_id})


def forget_run(course_root, name):
    """Removes a run that sbatch refused."""
    (folder(course_root, "runs") / f"{name}.json").unlink()


def runs(course_root):
    """[(name, run)] in the order they were submitted."""
    paths = sorted(folder(course_root, "runs").glob("[0-9]*.json"))
    return [(path.stem, json.loads(path.read_text())) for path in paths]


def run_students(course_root, name):
    return json.loads((folder(course_root, "runs") / f"{name}.json").read_text())["students"]


def write_result(course_root, student, **fields):
    write_json(folder(course_root, "results") / f"{student}.json", fields)


def read_result(course_root, student):
    path = folder(course_root, "results") / f"{student}.json"
    return json.loads(path.read_text()) if path.exists() else None


def write_log(course_root, student, text):
    (folder(course_root, "logs") / f"{student}.log").write_text(text)
