"""The nbgrader course: the release, the sample submissions, the sandbox, and the grades."""

import csv
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
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


@pytest.mark.skipif(not sandbox_available(), reason="namespaces need root on Linux")
def test_the_sandbox_hides_the_course_and_kills_stray_processes(tmp_path):
    course = tmp_path / "course"
    (course / "autograded" / "alice" / "ddim").mkdir(parents=True)
    (course / "autograded" / "bob" / "ddim").mkdir(parents=True)
    (course / "autograded" / "bob" / "ddim" / "ddim.ipynb").write_text("bob's answers")
    (course / "gradebook.db").write_text("grades")
    marker = tmp_path / "stray-survived"
    probe = f"""
import os, pathlib, subprocess, sys
course = pathlib.Path({str(course)!r})
print("gradebook:", (course / "gradebook.db").read_text() or "<empty>")
print("others:", os.listdir(course / "autograded" / "bob"))
print("solutions:", os.listdir({str(REPO_ROOT / "solutions")!r}))
try:
    open({str(REPO_ROOT / "diffusion_course" / "x.py")!r}, "w")
    print("library: writable")
except OSError:
    print("library: read-only")
subprocess.Popen([sys.executable, "-c",
                  "import time, pathlib; time.sleep(2); pathlib.Path({str(marker)!r}).touch()"],
                 start_new_session=True)
"""
    environment = {**os.environ, "AUTOGRADER_COURSE_ROOT": str(course),
                   "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-m", "autograder.sandbox", "run", "--no-network",
                             "--", sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=course / "autograded" / "alice" / "ddim", env=environment,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "gradebook: <empty>" in result.stdout
    assert "others: []" in result.stdout
    assert "solutions: []" in result.stdout
    assert "library: read-only" in result.stdout
    subprocess.run(["sleep", "3"])
    assert not marker.exists(), "a detached process outlived the sandbox"


def test_the_sandbox_refuses_to_run_unprotected(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("AUTOGRADER_SANDBOX", raising=False)
    with pytest.raises(sandbox.SandboxUnavailableError, match="unshare"):
        sandbox.check_available()


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


# the pictures of the release run by nbgrader with correct answers (quick profile, grading mode):
# training images, schedule, the samples after each of the 2 epochs, loss/KID curves, generated
RELEASE_PICTURES = 6


@pytest.mark.skipif(not sandbox_available(), reason="grading protection needs root on Linux")
def test_the_graded_release_and_its_feedback_show_every_picture(demo):
    out, _, _ = demo
    autograded = nbformat.read(out / "autograded" / "correct" / "ddim" / "ddim.ipynb",
                               as_version=4)
    outputs = [output for cell in autograded.cells if cell.cell_type == "code"
               for output in cell.outputs]
    assert sum("image/png" in output.get("data", {}) for output in outputs) == RELEASE_PICTURES
    feedback = (out / "feedback" / "correct" / "ddim" / "ddim.html").read_text()
    assert feedback.count("data:image/png;base64,") == RELEASE_PICTURES
