"""Where each student of a class stands: done, running, pending, failed or missing.

Four witnesses, each for what only it knows:
- the run records: which Slurm task graded each student last (records.py);
- Slurm: whether that task waits, runs, or how it ended (TIMEOUT, CANCELLED, NODE_FAIL, ...);
- the task's record and the grading's result: whether the grading finished, and how;
- the gradebook: whether its grades are saved.
A student is "done" when its latest task finished grading and the gradebook holds what it
graded; a task that Slurm killed, or that ended without finishing, is "failed" with the reason.
A student that the collection refused (a link, an impossible name) is done: nothing to grade.
"""

from autograder.cluster import records, slurm
from autograder.grading import gradebook, report

ASSIGNMENT = "ddim"
STATES = ("done", "running", "pending", "failed", "missing")


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
    """{student: {"state", "reason", "task"}} for every student of the class."""
    students = records.class_students(course_root) or []
    latest = {}  # student -> (job_id, task index) of the last run that graded it
    for _, run in records.runs(course_root):
        for index, student in enumerate(run["students"]):
            latest[student] = (run["job_id"], index)
    slurm_states = {job_id: slurm.task_states(job_id)
                    for job_id in {job_id for job_id, _ in latest.values() if job_id}}
    results = report.read_results(course_root, students)
    in_gradebook = graded_in_gradebook(course_root)

    table = {}
    for student in students:
        result = results.get(student)
        if student not in latest:
            table[student] = not_submitted(result)
            continue
        job_id, index = latest[student]
        task = f"{job_id}_{index}"
        record = records.read_task(course_root, student)
        if record is None or record["task"] != task:
            record = {}  # an earlier task's record says nothing about this one
        saved = result is not None and (not result.get("graded") or student in in_gradebook)
        table[student] = {"task": task, **state_of(slurm_states.get(job_id, {}).get(index),
                                                   record, result, saved)}
    return table


def not_submitted(result):
    """The row of a student that no task graded: refused at collection (the result says why, in
    the collection's words, "refused: ..." included), or never submitted."""
    if result:
        return {"state": "done", "reason": result["reason"], "task": ""}
    return {"state": "missing", "reason": "never submitted", "task": ""}


def state_of(slurm_task, record, result, saved):
    """The state and reason of one student from what each witness says (`slurm_task`: a
    slurm.TaskState, or None when Slurm knows nothing of the task)."""
    slurm_state = slurm_task.state if slurm_task else None
    if slurm_state in slurm.WAITING:
        return {"state": "pending", "reason": slurm.describe_waiting(slurm_task)}
    if slurm_state in slurm.RUNNING:
        return {"state": "running", "reason": ""}
    if record.get("state") == "graded" and saved:
        return {"state": "done",
                "reason": "" if result["status"] == "ok" else f"FAILED: {result['reason']}"}
    if record.get("state") == "graded":
        return {"state": "failed", "reason": "graded, but the gradebook has no submission"}
    if record.get("state") == "grader error":
        return {"state": "failed", "reason": f"grader error: {record['reason']}"}
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
    width = max([len("student"), *(len(repr(student)) - 2 for student in table)])
    print(f"{'student'.ljust(width)}  {'state':8}  {'task':12}  reason")
    for student, row in table.items():
        print(f"{repr(student)[1:-1].ljust(width)}  {row['state']:8}  {row['task']:12}  "
              f"{row['reason']}")
    print(summary(table))
