"""The autograde demo: release the assignment, grade every sample submission, report.

    python -m autograder.demo [--jobs N] [--submissions DIR] [--out DIR]

1. generates the student release from `solutions/` into a fresh course folder under `--out`;
2. collects each student's notebooks (only `.ipynb` files) and autogrades every student with
   nbgrader, `--jobs` students at a time, each in its own process (safe on nbgrader's sqlite
   gradebook), with a progress bar;
3. prints a grade table per student and per cell, and every failed submission with its reason;
4. writes the CSV export, the HTML feedback and the submission scanner's report.
"""

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from autograder import VERDICTS_FILE, gradebook, sandbox, scanner

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "ddim"
NOTEBOOK = "ddim.ipynb"
SAMPLE_SUBMISSIONS = REPO_ROOT / "autograder" / "submissions"
DEFAULT_OUT = REPO_ROOT / "outputs" / "autograde-demo"
MARKER = ".autograde-demo"  # only a folder this demo made is ever deleted by it
UNANSWERED = "YOUR ANSWER HERE"


def nbgrader(*arguments, course_root, check=True):
    """Runs one nbgrader command from the repository root (where nbgrader_config.py is)."""
    environment = {**os.environ, "AUTOGRADER_COURSE_ROOT": str(course_root)}
    result = subprocess.run([sys.executable, "-m", "nbgrader", *arguments], cwd=REPO_ROOT,
                            env=environment, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(arguments)} failed:\n{result.stderr[-3000:]}")
    return result


def fresh_course_folder(out):
    """An empty course folder holding a copy of the instructor source."""
    out = Path(out).resolve()
    if out.exists():
        if not (out / MARKER).exists():
            raise SystemExit(f"{out} exists and was not made by this demo; choose another --out.")
        shutil.rmtree(out)
    (out / "solutions").mkdir(parents=True)
    (out / MARKER).write_text("made by python -m autograder.demo\n")
    shutil.copytree(REPO_ROOT / "solutions" / ASSIGNMENT, out / "solutions" / ASSIGNMENT)
    return out


def collect(submissions, course_root):
    """Copies each student's notebooks (nothing else) to submitted/<student>/ddim/."""
    students = []
    for folder in sorted(Path(submissions).iterdir()):
        if not folder.is_dir():
            continue
        target = course_root / "submitted" / folder.name / ASSIGNMENT
        target.mkdir(parents=True)
        for notebook in folder.glob("*.ipynb"):
            shutil.copy2(notebook, target / notebook.name)
        students.append(folder.name)
    return students


def failure_reason(student, course_root, log):
    """Why a submission failed as a whole, or timed out in a cell; None when it did not."""
    submitted = course_root / "submitted" / student / ASSIGNMENT
    if not (submitted / NOTEBOOK).exists():
        found = ", ".join(path.name for path in submitted.glob("*.ipynb")) or "no notebook"
        return f"no {NOTEBOOK} in the submission (found: {found}); was the file renamed?"
    errors = [line for line in log.splitlines() if "[ERROR]" in line or "Error" in line]
    autograded = course_root / "autograded" / student / ASSIGNMENT / NOTEBOOK
    if not autograded.exists():
        return ("autograding failed: " + (errors[-1].strip() if errors else "see the log")
                )[:300]
    notebook = json.loads(autograded.read_text())
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            if output.get("ename") in ("CellTimeoutError", "KeyboardInterrupt", "TimeoutError"):
                grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id", "?")
                return f"cell {grade_id!r} did not finish in time (an endless loop?)"
    return None


def grade_one(student, course_root):
    started = time.perf_counter()
    result = nbgrader("autograde", ASSIGNMENT, "--student", student, "--force",
                      course_root=course_root, check=False)
    log = result.stdout + result.stderr
    return {"student": student, "seconds": time.perf_counter() - started,
            "failure": failure_reason(student, course_root, log), "log": log}


def read_grades(course_root, students):
    """{student: {grade_id: (score, max_score)}} from the gradebook."""
    from nbgrader.api import Gradebook

    grades = {}
    with Gradebook(gradebook.db_url(course_root)) as book:
        for student in students:
            try:
                submission = book.find_submission_notebook(NOTEBOOK[:-6], ASSIGNMENT,
                                                           student)
            except Exception:  # noqa: BLE001 - a failed submission has no notebook row
                grades[student] = {}
                continue
            # the written summary is graded by hand: its state is reported, not a score
            grades[student] = {grade.name: (grade.score, grade.max_score)
                               for grade in submission.grades if grade.name != "summary"}
    return grades


def manual_answer_state(course_root, student):
    path = course_root / "autograded" / student / ASSIGNMENT / NOTEBOOK
    if not path.exists():
        return "-"
    for cell in json.loads(path.read_text())["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "summary":
            text = "".join(cell["source"]).strip()
            return "No response" if text in ("", UNANSWERED) else "to grade by hand"
    return "No response"


def print_table(results, grades, course_root):
    cell_ids = sorted({grade_id for cells in grades.values() for grade_id in cells})
    header = ["student", *cell_ids, "total", "written summary", "seconds", "status"]
    rows = []
    for result in results:
        student = result["student"]
        cells = grades.get(student, {})
        scores = [cells[grade_id][0] if grade_id in cells else None for grade_id in cell_ids]
        total = sum(score or 0 for score in scores)
        status = "FAILED: " + result["failure"] if result["failure"] else "ok"
        rows.append([student, *["-" if s is None else f"{s:g}" for s in scores], f"{total:g}",
                     manual_answer_state(course_root, student), f"{result['seconds']:.0f}",
                     status])
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(str(value).ljust(width) for value, width in zip(row, widths))
              + "  " + row[-1])
    return header, rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1, help="students graded in parallel")
    parser.add_argument("--submissions", default=str(SAMPLE_SUBMISSIONS),
                        help="a folder with one subfolder of notebooks per student")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="the course folder to create")
    arguments = parser.parse_args(argv)
    if arguments.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {arguments.jobs}")

    if sandbox.mode() == "off":
        print("WARNING: AUTOGRADER_SANDBOX=off: student code runs UNPROTECTED.")
    else:
        try:
            sandbox.check_available()
        except sandbox.SandboxUnavailableError as error:
            raise SystemExit(f"Cannot grade with protection: {error}. Run as root on Linux, "
                             "or set AUTOGRADER_SANDBOX=off to grade unprotected.") from error

    course_root = fresh_course_folder(arguments.out)
    nbgrader("generate_assignment", ASSIGNMENT, "--force", course_root=course_root)
    students = collect(arguments.submissions, course_root)
    print(f"Grading {len(students)} submissions with {arguments.jobs} job(s) "
          f"in {course_root}")

    results = []
    with ThreadPoolExecutor(max_workers=arguments.jobs) as pool:
        futures = [pool.submit(grade_one, student, course_root) for student in students]
        for future in tqdm(as_completed(futures), total=len(futures), unit="submission"):
            results.append(future.result())
    results.sort(key=lambda result: result["student"])
    for result in results:
        (course_root / f"autograde-{result['student']}.log").write_text(result["log"])

    grades = read_grades(course_root, students)
    header, rows = print_table(results, grades, course_root)
    with open(course_root / "grade_table.csv", "w", newline="") as table:
        csv.writer(table).writerows([header, *rows])
    verdicts = {student: json.loads(path.read_text()) for student in students
                if (path := course_root / "autograded" / student / ASSIGNMENT
                    / VERDICTS_FILE).exists()}
    (course_root / "verdicts.json").write_text(json.dumps(verdicts, indent=2))

    report = scanner.scan_folder(course_root / "submitted")
    (course_root / "scan_report.md").write_text(scanner.format_report(report))
    flagged = [student for student, findings in report.items() if findings]
    print(f"Scanner: {len(flagged)} submission(s) flagged for manual review: "
          f"{', '.join(flagged) or 'none'} (see scan_report.md)")

    nbgrader("export", "--to", str(course_root / "grades.csv"), course_root=course_root)
    nbgrader("generate_feedback", ASSIGNMENT, "--force", course_root=course_root, check=False)
    seconds = [result["seconds"] for result in results]
    print(f"Wrote {course_root / 'grades.csv'}, feedback in {course_root / 'feedback'}.")
    if seconds:
        print(f"Wall time per submission: mean {sum(seconds) / len(seconds):.1f} s, "
              f"max {max(seconds):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
