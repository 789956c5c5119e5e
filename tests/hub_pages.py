"""The course hub as a person meets it, for tests/test_hub.py: the hub's command line, log-ins,
the formgrader's buttons and the Assignments tab, driven in headless Chromium through Selenium
and Debian's chromium-driver (.ci/apt-packages.txt)."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
COURSE = "hubtest"
INSTRUCTOR, STUDENT_A, STUDENT_B = "hubtest-teach", "hubtest-a", "hubtest-b"
ROLES = {INSTRUCTOR: "instructor", STUDENT_A: "student", STUDENT_B: "student"}
PASSWORDS = {name: f"dummy-{name}-password" for name in ROLES}  # the test's only
CORRECT = REPO_ROOT / "autograder" / "samples" / "submissions" / "correct" / "ddim.ipynb"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 120

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def free_port_block(size=12):
    """A port P with P .. P+size free on 127.0.0.1 (the hub takes P, P+1, P+2, P+10)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + size < 65535 and all(port_free(port + k) for k in range(size)):
            return port
    raise RuntimeError("no free block of ports")


def port_free(port):
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def hub_command(hub_dir, *arguments, **options):
    return subprocess.run([sys.executable, "-m", "autograder.hub", "--hub-dir", str(hub_dir),
                           *arguments], cwd=REPO_ROOT, capture_output=True, text=True,
                          **options)


class Hub:
    def __init__(self, folder, port):
        self.folder, self.port = folder, port
        self.url = f"http://127.0.0.1:{port}"
        self.hub_dir = folder / "hub"
        self.course_root = folder / COURSE
        self.users_csv = folder / "users.csv"
        self.exchange = self.hub_dir / "exchange" / COURSE
        self.formgrader = f"{self.url}/services/formgrader-{COURSE}/formgrader"
        self.environment = dict(os.environ)  # of the hub's commands

    def start(self):
        started = time.monotonic()
        result = hub_command(self.hub_dir, "start", "--course", str(self.course_root),
                             "--users", str(self.users_csv), "--port", str(self.port),
                             env=self.environment)
        assert result.returncode == 0, result.stdout + result.stderr
        print(result.stdout)
        return time.monotonic() - started

    def nbgrader(self, *arguments):
        result = hub_command(self.hub_dir, "nbgrader", COURSE, *arguments,
                             env=self.environment)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout + result.stderr

    def session(self, user, password=None):
        """A requests session logged in as `user` (the hub's login form)."""
        session = requests.Session()
        session.get(f"{self.url}/hub/login")
        response = session.post(f"{self.url}/hub/login?next=%2Fhub%2Fhome", data={
            "username": user, "password": password or PASSWORDS[user],
            "_xsrf": session.cookies.get("_xsrf")})
        session.login_status = response.status_code
        return session


def wait(driver, condition, timeout=WAIT_S):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)
    except TimeoutException:
        driver.save_screenshot(str(driver.shots / "timed-out.png"))  # what the page showed
        raise AssertionError(f"timed out on {driver.current_url}") from None


def log_in(driver, hub, user, next_url):
    driver.get(f"{hub.url}/hub/logout")
    driver.get(f"{hub.url}/hub/login?next={next_url}")
    driver.find_element(By.ID, "username_input").send_keys(user)
    driver.find_element(By.ID, "password_input").send_keys(PASSWORDS[user])
    driver.find_element(By.ID, "login_submit").click()


def click(driver, css):
    element = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, css))
    driver.execute_script("arguments[0].scrollIntoView();", element)
    element.click()  # a real click: JupyterLab's menus open on mousedown


def formgrader_action(driver, css, success):
    """Clicks a formgrader button of the ddim row; waits for its dialog to say `success`."""
    click(driver, f"tr:has(td[data-order='ddim']) {css} a")
    dialog = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".modal-dialog"))
    wait(driver, lambda d: success in dialog.text or "error" in dialog.text.lower())
    assert success in dialog.text, dialog.text
    click(driver, ".modal-footer button")
    wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, ".modal-dialog"))


def in_page(driver, method, url, body=None):
    """A request from the page, with its own session and XSRF cookie: (status, text)."""
    return driver.execute_async_script("""
        const [method, url, body, done] = arguments;
        const xsrf = (document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1] || "";
        fetch(url, {method, credentials: "same-origin", body,
                    headers: {"Content-Type": "application/json",
                              "X-XSRFToken": decodeURIComponent(xsrf)}})
            .then(async response => done([response.status, await response.text()]));
    """, method, url, body)


def assignment_list(driver, hub, user):
    """The student's Assignments tab (nbgrader's), in their own server."""
    log_in(driver, hub, user, "/hub/spawn")
    wait(driver, lambda d: d.current_url.startswith(f"{hub.url}/user/{user}/lab"))
    driver.get(f"{hub.url}/user/{user}/tree")
    menu = wait(driver, lambda d: next((item for item in d.find_elements(
        By.CSS_SELECTOR, ".lm-MenuBar-item") if item.text == "Nbgrader"), None))
    menu.click()
    click(driver, ".lm-Menu-item[data-command='nbgrader:open-assignment-list']")
    wait(driver, lambda d: "ddim" in d.find_element(By.ID, "released_assignments_list").text
         or "ddim" in d.find_element(By.ID, "fetched_assignments_list").text)


def button(driver, list_id, label):
    return wait(driver, lambda d: next((
        element for element in d.find_elements(By.CSS_SELECTOR, f"#{list_id} button")
        if element.text.strip() == label), None))


def student_submits(driver, hub, user, shots, answers=None):
    assignment_list(driver, hub, user)
    driver.execute_script("arguments[0].click()", button(driver, "released_assignments_list",
                                                         "Fetch"))
    submit = button(driver, "fetched_assignments_list", "Submit")
    driver.save_screenshot(str(shots / f"2-{user}-fetched.png"))
    if answers is not None:
        status, text = in_page(driver, "PUT", f"/user/{user}/api/contents/{COURSE}/ddim/ddim.ipynb",
                               json.dumps({"type": "notebook", "content": answers}))
        assert status == 200, text
    driver.execute_script("arguments[0].click()", submit)
    wait(driver, lambda d: user in d.find_element(By.ID, "submitted_assignments_list").text
         or "ddim" in d.find_element(By.ID, "submitted_assignments_list").text)
    driver.save_screenshot(str(shots / f"2-{user}-submitted.png"))


class Laps:
    """Prints the seconds each step took (pytest -s shows them)."""

    def __init__(self):
        self.last = time.monotonic()

    def __call__(self, step):
        now = time.monotonic()
        print(f"{step}: {now - self.last:.1f} s", flush=True)
        self.last = now


def manual_score(hub):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{hub.course_root / 'gradebook.db'}") as gradebook:
        return gradebook.find_grade("summary", "ddim", "ddim", STUDENT_A).score


def student_reads_feedback(driver, hub, user, shots):
    """The student fetches their feedback in the Assignments tab and opens it; its text."""
    assignment_list(driver, hub, user)
    driver.execute_script("arguments[0].click()",
                          button(driver, "submitted_assignments_list", "Fetch Feedback"))
    wait(driver, lambda d: "view feedback" in d.find_element(
        By.ID, "submitted_assignments_list").text)
    folder = f"{COURSE}/ddim/feedback"
    status, listing = in_page(driver, "GET", f"/user/{user}/api/contents/{folder}")
    assert status == 200, listing
    (fetched,) = json.loads(listing)["content"]  # one submission, one timestamp folder
    driver.get(f"{hub.url}/user/{user}/files/{folder}/{fetched['name']}/ddim.html")
    wait(driver, lambda d: "Score" in d.find_element(By.TAG_NAME, "body").text)
    driver.save_screenshot(str(shots / f"5-{user}-feedback.png"))
    return driver.find_element(By.TAG_NAME, "body").text


def as_user(user, *command):
    """Runs `command` as `user`'s Unix account: (exit status, output)."""
    result = subprocess.run(["runuser", "-u", user, "--", *command], capture_output=True,
                            text=True, cwd="/")
    return result.returncode, result.stdout + result.stderr


