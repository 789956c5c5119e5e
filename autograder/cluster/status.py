"""Where each student of a class stands: done, running, pending, failed or missing.

Three witnesses, each for what only it knows:
- the run records: which Slurm task graded each student last (records.py);
- Slurm: whether that task waits, runs, or how it ended (TIMEOUT, CANCELLED, NODE_FAIL, ...);
- the task's result and the gradebook: whether the grading finished and its grades are saved.
A student is "done" only when the task wrote its result and the gradebook holds the submission;
a task that Slurm killed, or that ended without a result, is "failed" with the reason.
"""

from autograder import gradebook
from autograder.cluster import records, slurm

ASSIGNMENT = "ddim"
STATES = ("done", "running", "pending", "failed", "missing")


def students(course_root):
    submitted = course_root / "submitted"
    return sorted(path.name for path in submitted.iterdir()) if submitted.exists() else []


def graded_in_gradebook(course_root):
    """The students that have a submission of the assignment in the gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(gradebook.db_url(course_root)) as book:
        try:
            return {submission.student.id
                    for submission in book.assignment_submissions(ASSIGNMENT)}
        except MissingEntry:
            return set()


def class_status(course_root):
    """{student: {"state", "reason", "task"}} for every student of the course folder."""
    latest = {}  # student -> (job_id, task index) of the last run that graded it
    for _, run in records.runs(course_root):
        for index, student in enumerate(run["students"]):
            latest[student] = (run["job_id"], index)
    slurm_states = {job_id: slurm.task_states(job_id)
                    for job_id in {job_id for job_id, _ in latest.values() if job_id}}
    in_gradebook = graded_in_gradebook(course_root)

    table = {}
    for student in students(course_root):
        if student not in latest:
            table[student] = {"state": "missing", "reason": "never submitted", "task": ""}
            continue
        job_id, index = latest[student]
        task = f"{job_id}_{index}"
        slurm_state = slurm_states.get(job_id, {}).get(index)
        result = records.read_result(course_root, student)
        finished = result is not None and result["task"] == task and result["state"] == "graded"
        table[student] = {"task": task, **state_of(slurm_state, finished,
                                                   student in in_gradebook, result)}
    return table


def state_of(slurm_state, finished, in_gradebook, result):
    """The state and reason of one student from what each witness says."""
    if slurm_state in slurm.WAITING:
        return {"state": "pending", "reason": slurm_state}
    if slurm_state in slurm.RUNNING:
        return {"state": "running", "reason": ""}
    if finished and in_gradebook:
        failure = result.get("failure")
        return {"state": "done", "reason": f"submission FAILED: {failure}" if failure else ""}
    if finished:
        return {"state": "failed", "reason": "graded, but the gradebook has no submission"}
    if slurm_state in slurm.ENDINGS and slurm_state != "COMPLETED":
        return {"state": "failed", "reason": f"{slurm_state}: {slurm.ENDINGS[slurm_state]}"}
    if slurm_state == "COMPLETED":
        return {"state": "failed", "reason": "the task ended without a result (see its log)"}
    return {"state": "failed", "reason": f"Slurm reports {slurm_state or 'no record'} and the "
                                         "task left no result"}


def summary(table):
    counts = {state: 0 for state in STATES}
    for row in table.values():
        counts[row["state"]] += 1
    return ", ".join(f"{count} {state}" for state, count in counts.items())


def print_status(table):
    width = max([len("student"), *map(len, table)])
    print(f"{'student'.ljust(width)}  {'state':8}  {'task':12}  reason")
    for student, row in table.items():
        print(f"{student.ljust(width)}  {row['state']:8}  {row['task']:12}  {row['reason']}")
    print(summary(table))
