"""What a class's grading on Slurm leaves on the shared file system, under <course>/cluster/.

    class.json              the class: the submissions folder and its students, in order
    runs/0001.json          one submitted job array: its Slurm job id and its students in task
                            order (task i grades students[i])
    tasks/<student>.json    what the student's latest task wrote: "running" when it started,
                            then "graded" or "grader error", with its task id
    logs/<job>_<task>.out   Slurm's output of each task

The grading itself writes results/<student>.json and logs/<student>.log in the course folder
(autograder/grading/grade_student.py), and the grades go to the gradebook. Every file here is
written
whole (a temporary file, then a rename), so a task killed midway leaves the previous version.
"""

import json
import os
import time
from pathlib import Path
from urllib.parse import quote

FOLDER = "cluster"


def folder(course_root, name=""):
    path = Path(course_root) / FOLDER / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path, data):
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1))
    os.replace(temporary, path)


def write_class(course_root, submissions, students):
    write_json(folder(course_root) / "class.json",
               {"submissions": str(submissions), "students": students})


def class_submissions(course_root):
    """The submissions folder the class was collected from."""
    return Path(json.loads((Path(course_root) / FOLDER / "class.json").read_text())["submissions"])


def class_students(course_root):
    path = Path(course_root) / FOLDER / "class.json"
    return json.loads(path.read_text())["students"] if path.exists() else None


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


def task_path(course_root, student):
    return folder(course_root, "tasks") / f"{quote(student, safe='')}.json"


def write_task(course_root, student, **fields):
    write_json(task_path(course_root, student), fields)


def read_task(course_root, student):
    path = task_path(course_root, student)
    return json.loads(path.read_text()) if path.exists() else None
