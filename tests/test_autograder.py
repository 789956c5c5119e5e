"""The nbgrader course: the release, the sample submissions, the sandbox, and the grades."""

import csv
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import sample_submissions, sandbox, scanner
from autograder.reference import solution_sources

REPO_ROOT = Path(__file__).resolve().parents[1]
RELEASE = REPO_ROOT / "assignment" / "ddim" / "ddim.ipynb"


def run_nbgrader(*arguments, course_root):
    environment = {**os.environ, "AUTOGRADER_COURSE_ROOT": str(course_root),
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "nbgrader", *arguments], cwd=REPO_ROOT,
                          env=environment, capture_output=True, text=True, timeout=300)


def distinctive_lines(source):
    """A solution's code lines, without its signature, docstring and comments."""
    lines = (line.strip() for line in source.splitlines())
    return {line for line in lines if line and not line.startswith(("def ", "#", '"""'))}


def leaked_functions(text):
    """The functions of which `text` holds at least half of the solution's lines."""
    leaked = {}
    for name, source in solution_sources().items():
        lines = distinctive_lines(source)
        found = sorted(line for line in lines if line in text)
        if len(found) >= len(lines) / 2:
            leaked[name] = found
    return leaked


def test_the_committed_release_is_up_to_date(tmp_path):
    (tmp_path / "solutions").symlink_to(REPO_ROOT / "solutions")
    result = run_nbgrader("generate_assignment", "ddim", "--force", course_root=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    generated = tmp_path / "assignment" / "ddim" / "ddim.ipynb"
    assert generated.read_text() == RELEASE.read_text(), (
        "assignment/ddim/ddim.ipynb is stale: run `nbgrader generate_assignment ddim --force` "
        "from the repository root and commit the result")


def test_the_release_and_the_library_hold_no_solution():
    release = RELEASE.read_text()
    assert not leaked_functions(release)
    assert release.count("raise NotImplementedError()") == 3
    for path in (REPO_ROOT / "diffusion_course").rglob("*.py"):
        assert not leaked_functions(path.read_text()), f"{path} holds a solution"
    # the check itself finds a solution where there is one
    solutions = "\n".join(solution_sources().values())
    assert set(leaked_functions(solutions)) == {"diffusion_schedule", "denoise",
                                                "reverse_diffusion"}


def test_the_sample_submissions_are_up_to_date(tmp_path):
    built = sample_submissions.build(tmp_path / "submissions")
    committed = sample_submissions.SUBMISSIONS
    assert built == sorted(path.name for path in committed.iterdir())
    for path in (tmp_path / "submissions").rglob("*"):
        if path.is_file():
            twin = committed / path.relative_to(tmp_path / "submissions")
            assert twin.read_text() == path.read_text(), (
                f"{twin} is stale: run `python -m autograder.sample_submissions`")
    assert set(built) == set(sample_submissions.EXPECTED_SCORES)


def test_the_readme_table_shows_the_expected_grades():
    readme = (REPO_ROOT / "autograder" / "README.md").read_text()
    for student, scores in sample_submissions.EXPECTED_SCORES.items():
        row = next((line for line in readme.splitlines() if line.startswith(f"| {student} |")),
                   None)
        assert row is not None, f"autograder/README.md has no row for {student}"
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if scores is None:
            assert "failed" in row.lower(), row
        else:
            numbers = [int(cell) for cell in cells[1:6] if re.fullmatch(r"\d+", cell)]
            assert numbers[:4] == [scores[cell] for cell in sample_submissions.POINTS], row


def test_the_scanner_flags_every_cheat_and_no_honest_submission():
    report = scanner.scan_folder(sample_submissions.SUBMISSIONS)
    for student in sample_submissions.CHEATS:
        if student != "cheat-fake-packages":  # that cheat is files, which are never collected
            assert report[student], f"{student} was not flagged"
    for student in ["correct", "untouched", *[s for s in report if s.startswith("mistake-")]]:
        assert not report[student], f"{student} was flagged: {report[student]}"


def sandbox_available():
    try:
        sandbox.check_available()
        return True
    except sandbox.SandboxUnavailableError:
        return False


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Runs the autograde demo over every sample submission once (about 5 minutes)."""
    out = tmp_path_factory.mktemp("demo") / "course"
    result = subprocess.run(
        [sys.executable, "-m", "autograder.demo", "--jobs", "2", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=1500,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "DDIM_CELL_TIMEOUT": "30"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with open(out / "grade_table.csv") as table:
        rows = {row["student"]: row for row in csv.DictReader(table)}
    return out, rows, result.stdout


@pytest.mark.skipif(not sandbox_available(), reason="grading protection needs root on Linux")
def test_every_sample_submission_gets_its_expected_grade(demo):
    out, rows, _ = demo
    assert set(rows) == set(sample_submissions.EXPECTED_SCORES)
    for student, expected in sample_submissions.EXPECTED_SCORES.items():
        row = rows[student]
        if expected is None:
            assert row["status"].startswith("FAILED"), (student, row)
            continue
        got = {cell: float(row[cell]) for cell in expected}
        assert got == {cell: float(points) for cell, points in expected.items()}, student
    for student, reason in sample_submissions.EXPECTED_FAILURES.items():
        assert reason in rows[student]["status"], (student, rows[student]["status"])
    assert rows["untouched"]["written summary"] == "No response"


@pytest.mark.skipif(not sandbox_available(), reason="grading protection needs root on Linux")
def test_the_demo_writes_exports_feedback_and_an_untampered_gradebook(demo):
    out, rows, stdout = demo
    assert (out / "grades.csv").read_text().count("\n") >= 2
    assert (out / "feedback" / "correct" / "ddim" / "ddim.html").exists()
    assert "FLAGGED" in (out / "scan_report.md").read_text()
    with sqlite3.connect(out / "gradebook.db") as database:
        tampered = database.execute("SELECT COUNT(*) FROM grade WHERE manual_score IS NOT NULL")
        assert tampered.fetchone()[0] == 0, "a submission rewrote the gradebook"
    verdicts = json.loads((out / "verdicts.json").read_text())
    assert "KID features" in verdicts["correct"]["test_training_kid"]["message"]
