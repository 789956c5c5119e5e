"""The class report of a grading run: the grade table (printed and grade_table.csv) and verdicts.

Columns follow the notebook's order. A submission that could not be graded shows `-` in every
cell, never a 0 that looks like a wrong answer; its full reason is in the status column. The
total counts the autograded points; the written summary is graded by hand, and the column
"to grade by hand" says whose points are still open.
"""

import csv
import json
from pathlib import Path

from autograder import VERDICTS_FILE, records_folder
from autograder.grading.grade_student import result_path
from autograder.intake.collect import ASSIGNMENT, NOTEBOOK
from autograder.intake.no_follow import read_json_no_follow

UNANSWERED = "YOUR ANSWER HERE"


def graded_cells(course_root):
    """([(grade_id, points)] of the autograded test cells, [(grade_id, points)] of the cells
    graded by hand), in the order of the instructor's notebook."""
    notebook = json.loads((Path(course_root) / "solutions" / ASSIGNMENT / NOTEBOOK).read_text())
    automatic, manual = [], []
    for cell in notebook["cells"]:
        metadata = cell["metadata"].get("nbgrader", {})
        if metadata.get("grade"):
            target = manual if metadata.get("solution") else automatic
            target.append((metadata["grade_id"], metadata.get("points", 0)))
    return automatic, manual


def read_grades(db_url, students):
    """{student: {grade_id: score}} from the gradebook; {} for a student without a notebook."""
    from nbgrader.api import Gradebook, MissingEntry

    grades = {}
    with Gradebook(db_url) as gradebook:
        for student in students:
            try:
                submission = gradebook.find_submission_notebook(NOTEBOOK[:-6], ASSIGNMENT,
                                                                student)
            except MissingEntry:
                grades[student] = {}
                continue
            grades[student] = {grade.name: grade.score for grade in submission.grades}
    return grades


def manual_answer_state(course_root, student, manual):
    """What is left to grade by hand for one student: '<cell>: N points' or 'No response'."""
    notebook = read_json_no_follow(
        Path(course_root) / "autograded" / student / ASSIGNMENT / NOTEBOOK)
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        return "-"
    sources = {cell.get("metadata", {}).get("nbgrader", {}).get("grade_id"):
               cell.get("source", "") for cell in notebook["cells"] if isinstance(cell, dict)}
    open_cells = []
    for grade_id, points in manual:
        source = sources.get(grade_id, "")
        text = ("".join(source) if isinstance(source, list) else str(source)).strip()
        if text not in ("", UNANSWERED):
            open_cells.append(f"{grade_id}: {points:g} points")
    return ", ".join(open_cells) or "No response"


def status_text(result):
    if result["status"] == "ok":
        return "ok"
    if result["status"] == "not graded":
        return f"NOT GRADED: {result['reason']}"
    if result["status"] == "grader error":
        return f"FAILED (grader error): {result['reason']}"
    return f"FAILED: {result['reason']}"


def table_rows(course_root, results, grades):
    """The header and one row per student of the grade table."""
    automatic, manual = graded_cells(course_root)
    possible = sum(points for _, points in automatic)
    by_hand = sum(points for _, points in manual)
    header = ["student", *[grade_id for grade_id, _ in automatic],
              f"total (of {possible:g})", f"to grade by hand (of {by_hand:g})", "seconds",
              "status"]
    rows = []
    for result in results:
        student = result["student"]
        cells = grades.get(student, {})
        if result.get("graded") and cells:
            scores = [cells.get(grade_id) for grade_id, _ in automatic]
            values = ["-" if score is None else f"{score:g}" for score in scores]
            total = f"{sum(score or 0 for score in scores):g}"
            state = manual_answer_state(course_root, student, manual)
        else:
            values, total, state = ["-"] * len(automatic), "-", "-"
        rows.append([student, *values, total, state, f"{result['seconds']:.0f}",
                     status_text(result)])
    return header, rows


def print_table(header, rows):
    """Aligned columns; the status (the full reason) last, never cut."""
    shown = [[repr(row[0])[1:-1], *row[1:]] for row in rows]  # a newline in a name stays visible
    widths = [max(len(str(row[i])) for row in [header, *shown]) for i in range(len(header) - 1)]
    for row in [header, *shown]:
        print("  ".join(str(value).ljust(width) for value, width in zip(row, widths))
              + "  " + row[-1])


def write_reports(course_root, results, db_url):
    """Prints the table and writes grade_table.csv and verdicts.json; returns (header, rows)."""
    course_root = Path(course_root)
    grades = read_grades(db_url, [result["student"] for result in results])
    header, rows = table_rows(course_root, results, grades)
    print_table(header, rows)
    with open(course_root / "grade_table.csv", "w", newline="") as table:
        csv.writer(table).writerows([header, *rows])
    verdicts = {}
    for result in results:
        if result.get("graded"):
            verdict = read_json_no_follow(
                records_folder(course_root, result["student"], ASSIGNMENT) / VERDICTS_FILE)
            if verdict is not None:
                verdicts[result["student"]] = verdict
    (course_root / "verdicts.json").write_text(json.dumps(verdicts, indent=2))
    return header, rows


GRADES_CSV = "grades.csv"
LEFT_OUT_CSV = "grades_left_out.csv"


def export_grades(course_root, header, rows, export):
    """nbgrader's CSV export, the file an instructor uploads to an LMS, without the students who
    could not be graded: nbgrader would give each of them 0.0, a failure that reads as a grade.
    They are listed beside it, in LEFT_OUT_CSV, with the reason. `export(path)` writes nbgrader's
    export there; `header` and `rows` are the grade table's. Returns the students left out."""
    course_root = Path(course_root)
    total = next(index for index, name in enumerate(header) if name.startswith("total"))
    left_out = {row[0]: row[-1] for row in rows if row[total] == "-"}
    full_export = course_root / f".{GRADES_CSV}.nbgrader"
    export(full_export)
    with open(full_export, newline="") as file:
        exported = list(csv.reader(file))
    student_column = exported[0].index("student_id")
    with open(course_root / GRADES_CSV, "w", newline="") as file:
        csv.writer(file).writerows(
            [exported[0], *[row for row in exported[1:] if row[student_column] not in left_out]])
    with open(course_root / LEFT_OUT_CSV, "w", newline="") as file:
        csv.writer(file).writerows([["student", "status"], *left_out.items()])
    full_export.unlink()
    if left_out:
        print(f"{GRADES_CSV} leaves out {len(left_out)} student(s) who could not be graded "
              f"(nbgrader would give them 0.0); they are listed with the reason in "
              f"{LEFT_OUT_CSV}: {', '.join(map(repr, left_out))}")
    return list(left_out)


def read_results(course_root, students):
    """{student: result} of the students of this run that have one (see grade_student.py)."""
    results = {}
    for student in students:
        result = read_json_no_follow(result_path(course_root, student))
        if isinstance(result, dict) and result.get("student") == student:
            results[student] = result
    return results
