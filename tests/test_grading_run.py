"""The grading run's edges: its input, its lock, links and names, the scanner, the README's
plain-nbgrader steps and the feedback a student reads (in a real headless browser).

The end-to-end grading of every sample (with Ctrl-C and resume) is in test_autograder.py.
"""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from browser import what_a_reader_sees as what_a_student_sees

from autograder.grading.grade_student import grader_fault, starved_cell
from autograder.grading.run_lock import course_lock
from autograder.intake import collect, scanner
from autograder.samples import catalogue, honest_styles
from autograder.samples.attacks import ATTACKS

REPO_ROOT = Path(__file__).resolve().parents[1]
RELEASE = REPO_ROOT / "assignment" / "ddim" / "ddim.ipynb"


def test_the_scanner_flags_every_attack_and_no_honest_style():
    report = scanner.scan_folder(catalogue.SUBMISSIONS)
    cheats = [student for student in ATTACKS if student.startswith("cheat-")]  # not the bombs
    for student in [*catalogue.CHEATS, *cheats, "cheat-symlinks-solution"]:
        assert report[student], f"{student} was not flagged"
    assert any(reason == scanner.SHADOWS_REASON
               for _, reason, _ in report["cheat-fake-packages"])
    for student in ["correct", *catalogue.HONEST_STYLES, *honest_styles.STYLES]:
        assert not report[student], f"{student} was flagged: {report[student]}"


def test_the_scanner_reads_large_notebooks_whole_and_flags_only_what_it_finds(
        tmp_path, monkeypatch):
    """Saved plots make honest notebooks megabytes large: their code is scanned all the same,
    and only a notebook larger than the grader takes is flagged for its size."""
    notebook = json.loads(RELEASE.read_text())
    picture = {"output_type": "display_data", "metadata": {},
               "data": {"image/png": "A" * 3 * 2**20}}  # 3 MiB of saved plot
    notebook["cells"][12]["outputs"] = [picture]
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "ddim.ipynb").write_text(json.dumps(notebook))
    notebook["cells"][15]["source"] = "import subprocess\n"
    (tmp_path / "plots-and-a-process").mkdir()
    (tmp_path / "plots-and-a-process" / "ddim.ipynb").write_text(json.dumps(notebook))
    report = scanner.scan_folder(tmp_path)
    assert report["plots"] == []
    assert [reason for _, reason, _ in report["plots-and-a-process"]] == ["starts processes"]
    monkeypatch.setattr(scanner, "MAX_NOTEBOOK_BYTES", 2**20)  # the grader's limit, smaller
    assert "the most the grader takes" in scanner.scan_folder(tmp_path)["plots"][0][2]


def test_the_scanner_survives_malformed_notebooks_and_never_follows_links(tmp_path):
    cases = {"cells-not-a-list": {"cells": "print(1)"}, "cell-not-an-object": {"cells": ["x"]},
             "metadata-not-an-object": {"cells": [{"cell_type": "code", "metadata": "m",
                                                   "source": "import subprocess"}]},
             "not-an-object": [1, 2]}
    for student, notebook in cases.items():
        (tmp_path / student).mkdir()
        (tmp_path / student / "ddim.ipynb").write_text(json.dumps(notebook))
    (tmp_path / "planted" / "numpy").mkdir(parents=True)
    (tmp_path / "planted" / "numpy" / "__init__.py").write_text("allclose = None\n")
    (tmp_path / "planted" / "hook.pth").write_text("import sys\n")
    (tmp_path / "planted" / "elsewhere").symlink_to("/")  # never walked into
    (tmp_path / "planted" / "gone").symlink_to("nowhere")
    report = scanner.scan_folder(tmp_path)
    assert report["metadata-not-an-object"][0][1] == "starts processes"
    for student in ["cells-not-a-list", "cell-not-an-object", "not-an-object"]:
        assert report[student][0][1] == scanner.NO_NOTEBOOK, report[student]
    planted = {label: reason for label, reason, _ in report["planted"]}
    assert planted["numpy/__init__.py"] == scanner.SHADOWS_REASON
    assert planted["hook.pth"] == scanner.SHADOWS_REASON
    assert planted["elsewhere"] == planted["gone"] == scanner.REFUSED
    assert not any(label.startswith("elsewhere/") for label in planted)


def test_collect_copies_regular_notebooks_and_refuses_links_and_special_files(tmp_path):
    submissions, course = tmp_path / "submissions", tmp_path / "course"
    text = RELEASE.read_text()
    (tmp_path / "secret.ipynb").write_text("the solution")
    for student in ["plain", "bom", "symlink", "hard-link", "fifo", "dangling-extra"]:
        (submissions / student).mkdir(parents=True)
    (submissions / "plain" / "ddim.ipynb").write_text(text)
    (submissions / "bom" / "ddim.ipynb").write_bytes(b"\xef\xbb\xbf" + text.encode())
    (submissions / "symlink" / "ddim.ipynb").symlink_to(tmp_path / "secret.ipynb")
    os.link(tmp_path / "secret.ipynb", submissions / "hard-link" / "ddim.ipynb")
    os.mkfifo(submissions / "fifo" / "ddim.ipynb")  # a reader that follows it would hang
    (submissions / "dangling-extra" / "ddim.ipynb").write_text(text)
    (submissions / "dangling-extra" / "notes.txt").symlink_to(tmp_path / "gone")
    (submissions / "linked-folder").symlink_to(submissions / "plain")

    students = collect.student_folders(submissions)
    assert "linked-folder" in students  # it is reported, refused
    problems = {}
    for student in students:
        refusals = collect.collect_student(submissions, student, course)
        problems[student] = (refusals, collect.submission_problem(refusals, course, student))
    copied = course / "submitted" / "plain" / "ddim" / "ddim.ipynb"
    assert copied.read_text() == text and not copied.is_symlink()
    bom = course / "submitted" / "bom" / "ddim" / "ddim.ipynb"
    assert bom.read_bytes() == b"\xef\xbb\xbf" + text.encode()  # copied byte for byte
    assert problems["plain"] == ([], None) and problems["bom"] == ([], None)
    assert "is a symbolic link" in problems["symlink"][1]
    assert "is a hard link" in problems["hard-link"][1]
    assert "not a regular file" in problems["fifo"][1]
    assert "is a symbolic link" in problems["linked-folder"][1]
    assert problems["dangling-extra"][1] is None
    assert "notes.txt is a symbolic link" in problems["dangling-extra"][0][0]
    assert not (course / "submitted" / "symlink" / "ddim" / "ddim.ipynb").exists()


def test_student_names_that_nbgrader_cannot_take_are_refused_with_the_reason():
    assert "control character" in collect.name_problem("two\nlines")
    assert "file pattern" in collect.name_problem("week[1]")
    # a leading dash is fine: the name is passed as --student=NAME
    assert collect.name_problem("--help") is None and collect.name_problem("-x") is None


def test_a_grader_fault_is_told_apart_from_a_students_fault():
    log = "Traceback ...\nautograder.judge.GraderError: the sandbox could not be set up\n"
    assert grader_fault(1, log) == "the sandbox could not be set up"
    assert "signal 9" in grader_fault(-9, "")
    assert "database is locked" in grader_fault(1, "OperationalError: database is locked")
    student_log = "[AutogradeApp | ERROR] Kernel died\nNameError: name 'x' is not defined\n"
    assert grader_fault(1, student_log) is None
    # the judge's own record of its fault is evidence enough
    assert grader_fault(1, student_log, {"reason": "the cache was unreadable"}) == (
        "the cache was unreadable")


def test_a_timeout_before_any_student_code_ran_is_the_machines_fault():
    def cell(grade_id, locked, timed_out=False):
        outputs = [{"output_type": "error", "ename": "CellTimeoutError"}] if timed_out else []
        return {"cell_type": "code", "outputs": outputs,
                "metadata": {"nbgrader": {"grade_id": grade_id, "locked": locked}}}
    assert starved_cell([cell("setup", True, timed_out=True), cell("answer", False)]) == "setup"
    # once the student's first cell ran, a timeout may be the student's endless loop
    assert starved_cell([cell("setup", True), cell("answer", False, timed_out=True)]) is None
    assert starved_cell([cell("setup", True), cell("answer", False),
                         cell("train", True, timed_out=True)]) is None


GRADING_COMMANDS = {"grade": ["autograder", "grade"], "demo": ["autograder", "demo"]}


def run_demo(*arguments, env=None, command="demo"):
    return subprocess.run([sys.executable, "-m", *GRADING_COMMANDS[command],
                           *map(str, arguments)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})})


@pytest.mark.parametrize("command", GRADING_COMMANDS)
def test_bad_submissions_get_a_message_and_never_cost_earlier_grades(tmp_path, command):
    out = tmp_path / "course"
    out.mkdir()
    for made_by_an_earlier_run in [".autograde-demo", "gradebook.db", "grades.csv"]:
        (out / made_by_an_earlier_run).write_text("kept")
    (tmp_path / "a-file").write_text("")
    (tmp_path / "empty").mkdir()
    for submissions, message in [(tmp_path / "typo", "does not exist"),
                                 (tmp_path / "a-file", "is not a folder"),
                                 (tmp_path / "empty", "0 submissions")]:
        result = run_demo("--submissions", submissions, "--out", out, command=command)
        assert result.returncode != 0 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert sorted(path.name for path in out.iterdir()) == [".autograde-demo", "gradebook.db",
                                                           "grades.csv"]
    assert (out / "gradebook.db").read_text() == "kept"


def test_a_second_run_on_one_out_is_refused_and_names_the_holder(tmp_path):
    out = tmp_path / "course"
    with course_lock(out):
        result = run_demo("--submissions", catalogue.SUBMISSIONS, "--out", out,
                          env={"AUTOGRADER_SANDBOX": "off"})
    assert result.returncode != 0
    assert f"pid {os.getpid()} on {socket.gethostname()}, started 20" in result.stderr, (
        result.stderr)
    assert "Traceback" not in result.stderr
    assert [path.name for path in out.iterdir()] == [".lock"]  # nothing created or deleted


# ---- the README's plain-nbgrader steps, and the feedback they write ----------------------


def readme_instructor_commands():
    """The nbgrader commands of the README's instructor steps, in the order written."""
    section = (REPO_ROOT / "README.md").read_text().split("## Instructors")[1].split("\n## ")[0]
    block = section.split("```bash")[1].split("```")[0]
    return [shlex.split(line, comments=True) for line in block.splitlines()
            if line.strip().startswith("nbgrader ")]


def fresh_clone(target):
    """The course's files that git tracks, as a fresh clone has them."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True,
                             check=True).stdout.decode().split("\0")
    for name in tracked:
        if name.startswith(("autograder/", "diffusion_course/", "solutions/", "assignment/")) \
                or name == "nbgrader_config.py":
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, target / name, follow_symlinks=False)
    return target


@pytest.fixture(scope="module")
def readme_flow(tmp_path_factory):
    """The README's instructor commands run as written in a fresh clone, grading `untouched`
    with a written summary (its functions raise NotImplementedError: cheap, and every verdict
    is a failure; the summary waits for a person)."""
    clone = fresh_clone(tmp_path_factory.mktemp("clone"))
    commands = readme_instructor_commands()
    assert [command[1] for command in commands] == [
        "generate_assignment", "autograde", "export", "generate_feedback"]
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("AUTOGRADER_COURSE_ROOT", "PYTHONPATH")}
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    logs = {}
    for command in commands:
        if command[1] == "autograde":
            submitted = clone / "submitted" / "untouched" / "ddim"
            submitted.mkdir(parents=True)
            notebook = json.loads(RELEASE.read_text())
            for cell in notebook["cells"]:
                if cell["metadata"].get("nbgrader", {}).get("grade_id") == "summary":
                    cell["source"] = catalogue.SUMMARY
            (submitted / "ddim.ipynb").write_text(json.dumps(notebook))
        importtime = ["-X", "importtime"] if command[1] == "export" else []
        result = subprocess.run([sys.executable, *importtime, "-m", *command], cwd=clone,
                                capture_output=True, text=True, timeout=900, env=environment)
        assert result.returncode == 0, (command, result.stderr[-3000:])
        logs[command[1]] = result.stdout + result.stderr
    return clone, logs


def test_the_readme_instructor_steps_work_in_order_from_a_fresh_clone(readme_flow):
    clone, logs = readme_flow
    everything = "\n".join(logs.values())
    assert "No assignment with ID" not in everything
    assert "Attribute 'checksum'" not in everything, "an untouched submission looks tampered"
    assert "SAWarning" not in everything
    assert "Kernel is running over TCP" not in everything
    assert not re.search(r"\|\s+tensorflow\b", logs["export"]), "nbgrader export imports TF"
    assert logs["export"].count("Exporting grades") == 1
    assert "untouched" in (clone / "grades.csv").read_text()
    ignored = subprocess.run(["git", "check-ignore", "-q", "grades.csv"], cwd=REPO_ROOT)
    assert ignored.returncode == 0, "grades.csv in the repository root must be git-ignored"


def test_the_feedback_reads_well_in_a_real_browser(readme_flow, tmp_path):
    clone, _ = readme_flow
    seen = what_a_student_sees(clone / "feedback" / "untouched" / "ddim" / "ddim.html", tmp_path)
    text = seen["visibleText"]
    assert [re.sub(r" \([^()]*\)$", "", item) for item in seen["index"]] == [
        "test_diffusion_schedule", "test_denoise", "test_reverse_diffusion", "test_training_kid",
        "summary (written, graded by hand)"]
    assert "Test cell" not in " ".join(seen["index"])
    assert text.count("Autograder verdict") == 4
    assert text.count("still raises NotImplementedError") == 3, "each verdict once"
    assert "BEGIN HIDDEN TESTS" not in text
    for instructor_path in [str(REPO_ROOT), str(clone), sys.prefix]:
        assert instructor_path not in text
    summary = seen["index"][-1]  # graded by hand: no score before a person grades it
    assert "not graded yet, 5 points" in summary and "Score" not in summary, summary
    assert "5 more points to be graded by hand" in text
    assert seen["overflowing"] == 0 and not seen["pageWider"], "long lines must wrap"



def test_the_grade_command_asks_for_the_class_and_the_course_folder():
    result = run_demo(command="grade")
    assert result.returncode == 2
    assert "the following arguments are required: --submissions, --out" in result.stderr
    result = run_demo("--submissions", REPO_ROOT, "--out", REPO_ROOT, "--jobs", "0",
                      command="grade")
    assert result.returncode != 0 and "--jobs must be at least 1, got 0" in result.stderr
