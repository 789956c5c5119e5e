"""The course on a real JupyterHub, clicked through in headless Chromium (Selenium and Debian's
chromium-driver), with real Unix users: `python -m autograder.hub start`, then

1. the instructor logs in and releases `ddim` in the formgrader;
2. student A logs in, fetches it, writes the correct answers (through the contents API of A's
   own server, in A's browser session) and submits;
3. student B submits the untouched release, after the due date;
4. the instructor collects, autogrades A from the formgrader's button (B from the command
   line, the same nbgrader settings) and gives A's summary 4 of 5 by hand;
5. the instructor returns the feedback: A reads 15/15 + 4/5, B reads 0, and B (as B's Unix
   user) can read nothing of A's.

Then the bad input: a wrong password, a stranger, a student at the formgrader and the hub's
API, an oversized submission, and a SIGKILLed hub. One hub serves the whole file. Screenshots
of the main steps go to $ARTIFACTS/hub-screenshots (else pytest's basetemp).
"""

import csv
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
from hub_pages import (
    CHROMEDRIVER,
    CORRECT,
    COURSE,
    INSTRUCTOR,
    PASSWORDS,
    REPO_ROOT,
    ROLES,
    STUDENT_A,
    STUDENT_B,
    By,
    Hub,
    Laps,
    as_user,
    click,
    formgrader_action,
    free_port_block,
    hub_command,
    in_page,
    log_in,
    manual_score,
    student_reads_feedback,
    student_submits,
    wait,
    webdriver,
)


@pytest.fixture(scope="module")
def hub(tmp_path_factory, grade_submission):
    for needed, install in ((CHROMEDRIVER, "apt-get install chromium-driver"),
                            ("configurable-http-proxy",
                             "npm install -g configurable-http-proxy@5.0.1")):
        if shutil.which(needed) is None:
            pytest.skip(f"{needed} is missing: {install}")
    if os.geteuid() != 0:
        pytest.skip("the hub makes Unix accounts: run as root")
    # under /tmp, not pytest's basetemp (mode 0700): students must reach the hub's folder
    folder = Path(tempfile.mkdtemp(prefix="course-hub-test-", dir="/tmp"))
    folder.chmod(0o755)
    hub = Hub(folder, free_port_block())
    hub.users_csv.write_text("username,role\n" + "".join(
        f"{name},{role}\n" for name, role in ROLES.items()))
    # the grading shares the test session's grader cache (tests/judging.py)
    hub.environment["DIFFUSION_GRADER_CACHE"] = str(grade_submission.cache_dir)
    hub.start_seconds = hub.start()
    subprocess.run(["chpasswd"], check=True, text=True, input="".join(
        f"{name}:{password}\n" for name, password in PASSWORDS.items()))
    yield hub
    hub_command(hub.hub_dir, "stop")
    shutil.copy(hub.hub_dir / "jupyterhub.log", shots_folder(tmp_path_factory))
    for name in ROLES:
        subprocess.run(["userdel", "--remove", name], capture_output=True)
    subprocess.run(["groupdel", f"course-{COURSE}"], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


def shots_folder(tmp_path_factory):
    base = os.environ.get("ARTIFACTS")
    folder = (Path(base) if base else tmp_path_factory.getbasetemp()) / "hub-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return shots_folder(tmp_path_factory)


@pytest.fixture(scope="module")
def browser(shots):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    driver.shots = shots
    yield driver
    driver.quit()


def test_course_lifecycle(hub, browser, shots):
    driver = browser
    lap = Laps()
    print(f"hub start: {hub.start_seconds:.1f} s")
    for student in (STUDENT_A, STUDENT_B):  # their servers start while the instructor works
        try:
            hub.session(student).get(f"{hub.url}/hub/spawn/{student}", timeout=1)
        except requests.exceptions.Timeout:
            pass  # the hub goes on starting it
    # 1. the instructor releases the assignment
    log_in(driver, hub, INSTRUCTOR, f"/services/formgrader-{COURSE}/formgrader")
    wait(driver, lambda d: "Manage Assignments" in d.page_source)
    formgrader_action(driver, "td.release", "Successfully released")
    driver.save_screenshot(str(shots / "1-instructor-released.png"))
    lap("released")

    # 2. student A submits the correct answers
    answers = json.loads(CORRECT.read_text())
    student_submits(driver, hub, STUDENT_A, shots, answers)
    lap("A submitted")
    # 3. student B submits the untouched release, after the due date
    due = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(time.time() + 1))
    hub.nbgrader("db", "assignment", "add", "ddim", f"--duedate={due}")
    time.sleep(max(0.0, time.mktime(time.strptime(due, "%Y-%m-%d %H:%M:%S UTC"))
                   - time.mktime(time.gmtime()) + 0.5))
    student_submits(driver, hub, STUDENT_B, shots)
    lap("B submitted")

    # 4. the instructor collects and grades
    log_in(driver, hub, INSTRUCTOR, f"/services/formgrader-{COURSE}/formgrader")
    wait(driver, lambda d: "Manage Assignments" in d.page_source)
    formgrader_action(driver, "td.collect", "Successfully collected")
    lap("collected")
    driver.get(f"{hub.formgrader}/manage_submissions/ddim")
    # B on the command line (the same settings), meanwhile A from the formgrader's button
    command_line = subprocess.Popen(
        [sys.executable, "-m", "autograder.hub", "--hub-dir", str(hub.hub_dir), "nbgrader",
         COURSE, "autograde", "ddim", f"--student={STUDENT_B}"], cwd=REPO_ROOT, env=hub.environment,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    click(driver, f"tr:has(td.student-id[data-order='{STUDENT_A}']) td.autograde a")
    dialog = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".modal-dialog"), 300)
    wait(driver, lambda d: "autograd" in dialog.text.lower() and "..." not in dialog.text, 300)
    driver.save_screenshot(str(shots / "4-instructor-autograded-A.png"))
    assert "Successfully" in dialog.text, dialog.text
    lap("A autograded")
    output, _ = command_line.communicate(timeout=600)
    assert command_line.returncode == 0, output
    lap("B autograded")

    # the summary, by hand, with the rubric in view
    status, text = in_page(driver, "GET", f"/services/formgrader-{COURSE}/formgrader/api/"
                           "submitted_notebooks/ddim/ddim")
    assert status == 200, text
    submission = next(item for item in json.loads(text) if item["student"] == STUDENT_A)
    driver.get(f"{hub.formgrader}/submissions/{submission['id']}")
    score = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "input.score#summary"))
    assert "Rubric for graders" in driver.find_element(By.ID, "notebook").text
    score.clear()
    score.send_keys("4\t")
    wait(driver, lambda d: "4" == d.find_element(By.CSS_SELECTOR, "input.score#summary")
         .get_attribute("value"))
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", score)
    driver.save_screenshot(str(shots / "4-instructor-grades-summary.png"))
    wait(driver, lambda d: manual_score(hub) == 4.0, 30)
    lap("graded by hand")

    # 5. the feedback goes back through the exchange
    driver.get(f"{hub.formgrader}/manage_assignments")
    # generated on the command line: the formgrader's button draws nbgrader's plain feedback
    hub.nbgrader("generate_feedback", "ddim", "--force")
    formgrader_action(driver, "td.release-feedback", "Successfully released feedback")
    lap("feedback released")
    feedback = {user: student_reads_feedback(driver, hub, user, shots)
                for user in (STUDENT_A, STUDENT_B)}
    lap("feedback read")
    for test_cell, points in (("diffusion_schedule", 3), ("denoise", 3),
                              ("reverse_diffusion", 4), ("training_kid", 5)):
        assert f"test_{test_cell} (Score: {points}.0 / {points}.0)" in feedback[STUDENT_A]
    assert "Score: 4.0 / 5.0" in feedback[STUDENT_A]  # the summary, by hand
    assert ("ddim (Score: 19.0 / 20.0: 15.0 / 15.0 autograded, 4.0 / 5.0 graded by hand)"
            in feedback[STUDENT_A])
    assert "Rubric" not in feedback[STUDENT_A]
    assert "ddim (Score: 0.0" in feedback[STUDENT_B]
    export = hub.nbgrader("export", f"--to={hub.folder / 'grades.csv'}")
    grades = {row["student_id"]: row for row in csv.DictReader(
        (hub.folder / "grades.csv").open())}
    assert float(grades[STUDENT_A]["score"]) == 19.0, export
    assert float(grades[STUDENT_B]["score"]) == 0.0
    assert float(grades[STUDENT_A]["late_submission_penalty"] or 0) == 0
    lap("exported")


def test_students_cannot_read_each_other(hub):
    (submission,) = (hub.exchange / "inbound").glob(f"{STUDENT_A}+ddim+*")
    feedback = [path for path in (hub.exchange / "feedback").iterdir()
                if path.stat().st_uid == pwd.getpwnam(STUDENT_A).pw_uid]
    assert feedback, "A's feedback was not released"
    assert as_user(STUDENT_A, "cat", str(feedback[0]))[0] == 0  # A reads A's own
    for command in (["ls", str(hub.exchange / "inbound")],
                    ["ls", str(submission)],
                    ["cat", str(submission / "ddim.ipynb")],
                    ["ls", str(hub.exchange / "feedback")],
                    ["cat", str(feedback[0])],
                    ["ls", pwd.getpwnam(STUDENT_A).pw_dir]):
        status, output = as_user(STUDENT_B, *command)
        assert status != 0 and "Permission denied" in output, (command, output)


def test_students_python_has_no_repository(hub):
    python = str(hub.hub_dir / "python" / "bin" / "python")
    status, output = as_user(STUDENT_B, python, "-c", "import autograder")
    assert status != 0 and "No module named 'autograder'" in output, output
    status, output = as_user(STUDENT_B, python, "-c", "import diffusion_course.schedules")
    assert status != 0 and "No module named" in output, output  # the design space stays out
    for path in (REPO_ROOT, REPO_ROOT / "solutions" / "ddim" / "ddim.ipynb", hub.course_root):
        status, output = as_user(STUDENT_B, "cat", str(path))
        assert status != 0 and "Permission denied" in output, (path, output)


def test_log_in_is_refused_without_the_right_password(hub):
    assert hub.session(STUDENT_A, "wrong password").login_status == 403
    assert hub.session("root", "anything").login_status == 403  # not on the list
    assert requests.get(f"{hub.url}/hub/signup").status_code == 404  # no sign-up


def test_students_cannot_reach_the_formgrader_or_the_hub_api(hub):
    session = hub.session(STUDENT_B)
    assert session.get(f"{hub.formgrader}/manage_assignments").status_code == 403
    xsrf = session.cookies.get("_xsrf", path="/hub/")
    made = session.post(f"{hub.url}/hub/api/users/{STUDENT_B}/tokens", json={},
                        headers={"X-XSRFToken": xsrf})
    assert made.status_code == 201, made.text
    token = {"Authorization": f"token {made.json()['token']}"}
    assert requests.get(f"{hub.url}/hub/api/users", headers=token).status_code == 403
    assert requests.post(f"{hub.url}/hub/api/users/{STUDENT_A}/server",
                         headers=token).status_code in (403, 404)
    assert requests.get(f"{hub.formgrader}/api/assignments",
                        headers=token).status_code == 403
    # nor another student's server
    assert session.get(f"{hub.url}/user/{STUDENT_A}/api/contents").status_code == 403


def test_an_oversized_submission_is_refused(hub):
    folder = Path(pwd.getpwnam(STUDENT_A).pw_dir) / COURSE / "ddim"
    big = folder / "checkpoint.bin"
    assert as_user(STUDENT_A, "truncate", "-s", "51M", str(big))[0] == 0
    python = str(hub.hub_dir / "python" / "bin" / "python")
    status, output = as_user(STUDENT_A, "sh", "-c", f"cd {folder.parent.parent} && HOME="
                             f"{folder.parent.parent} {python} -m nbgrader submit ddim "
                             f"--course={COURSE}")
    big.unlink()
    assert status != 0 and "over the course's limit of 50 MB" in output, output


def test_a_late_submission_is_marked_late(hub):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{hub.course_root / 'gradebook.db'}") as gradebook:
        assert gradebook.find_submission("ddim", STUDENT_A).total_seconds_late == 0
        assert gradebook.find_submission("ddim", STUDENT_B).total_seconds_late > 0


def test_a_killed_hub_restarts_and_loses_nothing(hub):
    from autograder.hub.process import server_pids

    servers = server_pids(hub.hub_dir)
    os.kill(int((hub.hub_dir / "jupyterhub.pid").read_text()), signal.SIGKILL)
    hub.start()
    hub.nbgrader("export", f"--to={hub.folder / 'after-restart.csv'}")
    grades = {row["student_id"]: float(row["score"]) for row in csv.DictReader(
        (hub.folder / "after-restart.csv").open())}
    assert grades == {STUDENT_A: 19.0, STUDENT_B: 0.0}
    assert list((hub.exchange / "inbound").glob(f"{STUDENT_A}+ddim+*"))
    # the students' servers lived on, and the new hub reaches them
    assert server_pids(hub.hub_dir) == servers and all(Path(f"/proc/{pid}").exists()
                                                       for pid in servers)
    session = hub.session(STUDENT_A)
    assert session.get(f"{hub.url}/user/{STUDENT_A}/tree").status_code == 200
    assert session.get(f"{hub.url}/user/{STUDENT_A}/api/status").status_code == 200


def test_several_courses_have_their_own_formgrader_and_groups(tmp_path):
    from autograder.hub import hub_config

    courses = {"ddim-a": {"root": str(tmp_path / "a"), "people": {"t1": "instructor",
                                                                   "s1": "student"}},
               "ddim-b": {"root": str(tmp_path / "b"), "people": {"t2": "instructor",
                                                                   "s1": "student"}}}
    groups, roles = hub_config.groups_and_roles(courses)
    assert groups["ddim-a-instructors"]["users"] == ["t1"]
    assert groups["ddim-b-students"]["users"] == ["s1"]
    assert [(role["name"], role["scopes"], role["groups"]) for role in roles] == [
        ("formgrader-ddim-a", ["access:services!service=formgrader-ddim-a"],
         ["ddim-a-instructors"]),
        ("formgrader-ddim-b", ["access:services!service=formgrader-ddim-b"],
         ["ddim-b-instructors"])]
    services = [hub_config.formgrader_service(tmp_path, name, settings, 9000 + index)
                for index, (name, settings) in enumerate(courses.items())]
    assert [service["environment"]["AUTOGRADER_COURSE_ROOT"] for service in services] == [
        str(tmp_path / "a"), str(tmp_path / "b")]
    assert len({service["url"] for service in services}) == 2


@pytest.mark.parametrize("text, error", [
    ("name,role\nx,student\n", "expected a header `username,role`"),
    ("username,role\nBad Name,instructor\n", "line 2: 'Bad Name' is not a usable Unix user"),
    ("username,role\nt,instructor\nx,teacher\n", "line 3: role 'teacher' is not one of"),
    ("username,role\nx,student\n", "list at least one instructor"),
])
def test_a_bad_users_csv_is_refused_with_its_line(tmp_path, text, error):
    from autograder.hub.roster import RosterError, read_roster

    (tmp_path / "people.csv").write_text(text)
    with pytest.raises(RosterError, match=re.escape(error)):
        read_roster(tmp_path / "people.csv")
