"""The nbgrader course: the release, the sample submissions, the sandbox, and the grades."""

import csv
import json
import os
import re
import shutil
import signal
import site
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from autograder import sandbox
from autograder.assignment.solution import solution_sources
from autograder.nbgrader_steps import ungraded_cells
from autograder.nbgrader_steps.ungraded_cells import RestoreUngradedCells, StubUngradedCells
from autograder.samples import catalogue
from autograder.samples.attacks import ATTACKS, PLANTED

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


def test_the_release_holds_no_solution():
    """The student release holds none of the three solutions; the library may.

    At first the library held none either, and this test scanned it too. Then a cosine schedule,
    the parametrizations and the DDIM samplers came into the library (schedules.py,
    parametrizations.py, continuous_samplers.py) for the TAs' ablations. The
    assignment stays the student's work another way: graded runs hide those modules from the
    answer cells, the scanner flags answers that import them, and the notebook's rules say so.
    """
    release = RELEASE.read_text()
    assert not leaked_functions(release)
    assert release.count("raise NotImplementedError()") == 3
    # the check itself finds a solution where there is one
    solutions = "\n".join(solution_sources().values())
    assert set(leaked_functions(solutions)) == {"diffusion_schedule", "denoise",
                                                "reverse_diffusion"}


def test_the_sample_submissions_are_up_to_date(tmp_path):
    built = catalogue.build(tmp_path / "submissions")
    committed = catalogue.SUBMISSIONS
    assert built == sorted(path.name for path in committed.iterdir())
    for path in (tmp_path / "submissions").rglob("*"):
        twin = committed / path.relative_to(tmp_path / "submissions")
        assert path.is_symlink() == twin.is_symlink(), twin
        if path.is_file():
            assert twin.read_bytes() == path.read_bytes(), (
                f"{twin} is stale: run `python -m autograder.samples.catalogue`")
    special = catalogue.build(tmp_path / "special", special_files=True)
    assert set(special) - set(built) == set(catalogue.SPECIAL_FILE_SAMPLES)
    assert set(special) == set(catalogue.EXPECTED_SCORES)


def _parametrized(test):
    return {value for mark in test.pytestmark if mark.name == "parametrize"
            for value in mark.args[1]}


def test_every_sample_is_graded_by_the_end_to_end_test_or_the_judges_tests():
    """The judge-level samples are each a parameter of a judge test (tests/test_judge*.py), or
    a copy whose syntax trees equal a graded one's; the others are graded here."""
    import test_judge
    import test_judge_notebooks

    graded = ({f"mistake-{name.replace('_', '-')}" for name in
               _parametrized(test_judge.test_a_typical_mistake_fails_only_its_own_test)}
              | _parametrized(test_judge_notebooks.test_every_honest_style_gets_full_marks)
              | _parametrized(
                  test_judge_notebooks.test_a_correct_sample_in_another_style_gets_full_marks)
              | _parametrized(
                  test_judge_notebooks.test_a_copy_that_changes_no_code_gets_the_grade_of_its_original))
    assert set(catalogue.JUDGE_LEVEL_SAMPLES) == graded
    assert graded <= set(catalogue.EXPECTED_SCORES)
    assert not {"correct", "untouched"} & set(catalogue.JUDGE_LEVEL_SAMPLES)


def test_the_readme_table_shows_the_expected_grades():
    readme = (REPO_ROOT / "autograder" / "README.md").read_text()
    for student, scores in catalogue.EXPECTED_SCORES.items():
        row = next((line for line in readme.splitlines() if line.startswith(f"| {student} |")),
                   None)
        assert row is not None, f"autograder/README.md has no row for {student}"
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if scores is None:
            assert "failed" in row.lower(), row
        else:
            numbers = [int(cell) for cell in cells[1:6] if re.fullmatch(r"\d+", cell)]
            assert numbers[:4] == [scores[cell] for cell in catalogue.POINTS], row


def sandbox_available():
    try:
        sandbox.check_available()
        return True
    except sandbox.SandboxUnavailableError:
        return False


STUDENTS_ADDED_BY_THE_TEST = {
    "--help": "untouched",  # parsed as an option if the name were passed as an argument
    "two\nlines": None,  # nbgrader's paths cannot hold it: refused with the reason
}
PLANTED_LOOKUP_PLACES = ["/tmp", "/dev/shm", "/var/tmp", *site.getsitepackages(),
                         site.getusersitepackages()]


def graded_results(out):
    """How many students nbgrader has finished (refused ones have no attempt)."""
    results = [json.loads(path.read_text()) for path in (out / "results").glob("*.json")]
    return sum(result.get("attempts", 0) > 0 for result in results)


def planted_files(*places):
    """Files an attack made (named planted_by_student*) under `places`, never following a link;
    files that other processes delete meanwhile are skipped."""
    found = []
    for place in places:
        for folder, subfolders, files in os.walk(place):
            subfolders[:] = [name for name in subfolders if name != "submissions"]
            found += [Path(folder) / name for name in subfolders + files
                      if name.startswith(PLANTED)]
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Grades the sample submissions (the hard-link and FIFO samples too) with the demo, --jobs
    3 (a grading waits on its kernel and runners about as much as it computes, so three keep two
    cores busy): a Ctrl-C once a few students are done, then the rerun that finishes the class.

    The judge-level samples are left to tests/test_judge.py (see JUDGE_LEVEL_SAMPLES)."""
    root = tmp_path_factory.mktemp("demo")
    submissions, out, home = root / "submissions", root / "course", root / "home"
    catalogue.build(submissions, special_files=True)
    for student in catalogue.JUDGE_LEVEL_SAMPLES:
        shutil.rmtree(submissions / student)
    for student, copied in STUDENTS_ADDED_BY_THE_TEST.items():
        shutil.copytree(submissions / (copied or "correct"), submissions / student)
    home.mkdir()
    before = set(planted_files(*PLANTED_LOOKUP_PLACES))
    # the instructor's command; `python -m autograder demo` is the same run on the samples
    command = [sys.executable, "-m", "autograder", "grade", "--jobs", "3",
               "--submissions", str(submissions), "--out", str(out)]
    # the cell timeout interrupts broken-endless-loop; the slowest honest cell (training) took
    # up to 30 s here while the other test workers shared the two cores
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "DDIM_CELL_TIMEOUT": "60",
                   "HOME": str(home), "DIFFUSION_GRADER_CACHE": str(root / "cache")}
    first = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=environment)
    while first.poll() is None and (not (out / "results").is_dir() or graded_results(out) < 2):
        time.sleep(1)
    first.send_signal(signal.SIGINT)
    stdout, stderr = first.communicate(timeout=600)
    with open(out / "grade_table.csv") as table:
        interrupted = {row["student"]: row for row in csv.DictReader(table)}
    interruption = (first.returncode, stdout + stderr, interrupted)

    second = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=2400, env=environment)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    with open(out / "grade_table.csv") as table:
        rows = {row["student"]: row for row in csv.DictReader(table)}
    planted = set(planted_files(*PLANTED_LOOKUP_PLACES, REPO_ROOT, home, root / "cache", out))
    # what the instructor reads: the progress and the messages, on stdout and stderr
    return out, rows, second.stdout + second.stderr, interruption, planted - before


@pytest.mark.skipif(not sandbox_available(), reason="grading protection needs root on Linux")
def test_ctrl_c_keeps_finished_work_and_a_rerun_grades_only_the_rest(demo):
    out, rows, stdout, (returncode, output, interrupted), _ = demo
    assert returncode == 130, output[-3000:]
    assert "To grade them, run again" in output
    assert set(interrupted) == set(rows), "every student is in the table, graded or not"
    waiting = [student for student, row in interrupted.items()
               if row["status"].startswith("NOT GRADED")]
    graded = [student for student, row in interrupted.items()  # by nbgrader, not refused
              if not row["status"].startswith("NOT GRADED") and row["seconds"] != "0"]
    assert waiting and len(graded) >= 2, interrupted
    assert f"Resuming: {len(rows) - len(waiting)} of {len(rows)} students" in stdout
    assert not any(row["status"].startswith("NOT GRADED") for row in rows.values())


@pytest.mark.skipif(not sandbox_available(), reason="grading protection needs root on Linux")
def test_the_grading_run_prints_no_tensorflow_start_up_notices(demo):
    # it starts TensorFlow once, to look for a GPU (the class's profile)
    _, _, output, (_, interrupted_output, _), _ = demo
    for run_output in (output, interrupted_output):
        assert "absl::InitializeLog" not in run_output and "oneDNN" not in run_output, (
            run_output[:2000])


@pytest.mark.skipif(not sandbox_available(), reason="grading protection needs root on Linux")
def test_every_sample_submission_gets_its_expected_grade(demo):
    out, rows, _, _, _ = demo
    expected_scores = {**catalogue.EXPECTED_SCORES, "--help": catalogue.NOTHING,
                       "two\nlines": None}
    for student in catalogue.JUDGE_LEVEL_SAMPLES:
        del expected_scores[student]
    assert set(rows) == set(expected_scores)
    for student, expected in expected_scores.items():
        row = rows[student]
        if expected is None:
            assert row["status"].startswith("FAILED"), (student, row)
            assert all(row[cell] == "-" for cell in catalogue.POINTS), (student, row)
        elif expected is catalogue.NOTHING:  # an attack earns nothing, FAILED or not
            assert all(row[cell] in ("0", "-") for cell in expected), (student, row)
            assert "grader error" not in row["status"], (student, row)
        else:
            got = {cell: float(row[cell]) for cell in expected}
            assert got == {cell: float(points) for cell, points in expected.items()}, (
                student, row)
    for student, reason in catalogue.EXPECTED_FAILURES.items():
        assert reason in rows[student]["status"], (student, rows[student]["status"])
    assert "control character" in rows["two\nlines"]["status"]
    assert rows["untouched"]["to grade by hand (of 5)"] == "No response"
    assert rows["correct"]["to grade by hand (of 5)"] == "summary: 5 points"
    assert list(rows["correct"])[1:5] == list(catalogue.POINTS), "notebook order"


@pytest.mark.skipif(not sandbox_available(), reason="grading protection needs root on Linux")
def test_no_attack_leaves_anything_behind(demo):
    _, _, _, _, planted = demo
    own_folders = {("autograded", student) for student in ATTACKS}
    escaped = [path for path in planted
               if not any(f"/{step}/{student}/" in str(path) for step, student in own_folders)]
    assert not escaped, f"student code wrote outside its own folder: {escaped}"


@pytest.mark.skipif(not sandbox_available(), reason="grading protection needs root on Linux")
def test_the_demo_writes_exports_feedback_and_an_untampered_gradebook(demo):
    out, rows, stdout, _, _ = demo
    exported = list(csv.DictReader(open(out / "grades.csv")))
    # every graded student; nbgrader's export would give each failed one 0.0, so they are left
    # out and listed beside it with their reason (a name with a newline included)
    ungraded = {student for student, row in rows.items() if row["total (of 15)"] == "-"}
    assert ungraded >= {"broken-invalid-json", "two\nlines"}
    assert {row["student_id"] for row in exported} == set(rows) - ungraded
    left_out = {row["student"]: row["status"]
                for row in csv.DictReader(open(out / "grades_left_out.csv"))}
    assert left_out == {student: rows[student]["status"] for student in ungraded}
    assert "not valid JSON" in left_out["broken-invalid-json"]
    assert (out / "feedback" / "correct" / "ddim" / "ddim.html").exists()
    scan = (out / "scan_report.md").read_text()
    assert "FLAGGED" in scan and "'two\\nlines'" in scan
    with sqlite3.connect(out / "gradebook.db") as database:
        tampered = database.execute("SELECT COUNT(*) FROM grade WHERE manual_score IS NOT NULL")
        assert tampered.fetchone()[0] == 0, "a submission rewrote the gradebook"
    verdicts = json.loads((out / "verdicts.json").read_text())
    assert "KID features" in verdicts["correct"]["test_training_kid"]["message"]
    with open(out / "similarity.csv") as file:
        similarity = list(csv.DictReader(file))
    same_files = {(row["first"], row["second"]) for row in similarity if row["kind"] == "same file"}
    assert ("cheat-symlinks-neighbour", "correct") in same_files
    assert ("cheat-hard-links-solution", "") in same_files  # its other name is outside the class
    solution = {row["first"]: row["flagged"] for row in similarity if row["kind"] == "solution"}
    assert solution["correct"] == "yes" and "--help" not in solution  # a copy of untouched
    assert "Similarity: 3 shared file(s)" in stdout


# the pictures of the release run by nbgrader with correct answers (quick profile, grading mode):
# the student's schedule; the data, training, curves and generation cells are not run while
# grading (autograder/nbgrader_steps/ungraded_cells.py): the judge trains the functions itself
RELEASE_PICTURES = 1


@pytest.mark.skipif(not sandbox_available(), reason="grading protection needs root on Linux")
def test_the_graded_release_and_its_feedback_show_every_picture(demo):
    out, *_ = demo
    autograded = nbformat.read(out / "autograded" / "correct" / "ddim" / "ddim.ipynb",
                               as_version=4)
    outputs = [output for cell in autograded.cells if cell.cell_type == "code"
               for output in cell.outputs]
    assert sum("image/png" in output.get("data", {}) for output in outputs) == RELEASE_PICTURES
    feedback = (out / "feedback" / "correct" / "ddim" / "ddim.html").read_text()
    assert feedback.count("data:image/png;base64,") == RELEASE_PICTURES
    # the training cell shows its own code, and why it did not run
    (train,) = [cell for cell in autograded.cells if "model.fit(" in cell.source]
    assert "Not run by the autograder" in "".join(output.get("text", "")
                                                  for output in train.outputs)
    assert "Not run by the autograder" in feedback


def _release_with(extra_cell=None):
    notebook = nbformat.read(catalogue.RELEASE, as_version=4)
    if extra_cell is not None:
        notebook.cells.insert(12, nbformat.v4.new_code_cell(extra_cell))
    return notebook


def _grade_ids_not_run(notebook):
    notebook, resources = StubUngradedCells().preprocess(notebook, {})
    stubbed = {cell.metadata["nbgrader"]["grade_id"] for cell in notebook.cells
               if cell.source == ungraded_cells.STUB}
    RestoreUngradedCells().preprocess(notebook, resources)
    return stubbed


def test_the_grading_kernel_skips_what_nothing_reads_and_restores_the_code():
    release = _release_with()
    sources = [cell.source for cell in release.cells]
    assert _grade_ids_not_run(release) == {"network", "data", "kid", "train", "curves",
                                           "test_training_kid", "generate"}
    assert [cell.source for cell in release.cells] == sources  # the feedback shows the code
    # a helper cell of the student's that reads the release's data: the data cell runs for it
    assert "data" not in _grade_ids_not_run(_release_with("batch = next(iter(train_dataset))"))
    assert "kid" not in _grade_ids_not_run(_release_with("%time print(kid.feature_name)"))
    # a name the student defines itself does not make the release's cell run
    assert "data" in _grade_ids_not_run(_release_with("train_dataset = None"))
