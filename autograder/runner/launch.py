"""The trusted side of the student runner: start it in the sandbox, read its messages, and
tell a fault of the student's code from a fault of the grader.

One `RunnerProcess` is one sandboxed `student_runner` process. The request goes to its stdin
and its messages come back over its stdout: pipes that this process created, so no file in a
shared folder carries them (another student's code could read or replace a file). Its stderr
(what student code prints) is kept, its last part only.

Who is at fault is decided by evidence (`classify_failure`): the sandbox's report (set-up
error, limit hit, signal), the exit status, our own timeout, and the runner's messages: "ready"
(it started), "student_code" (the student's first cell was about to run), "progress" (the last
sign of life). A fault before any student code ran, a sandbox that could not be set up, a kill
from outside, or a run still progressing when the time ran out is the grader's (GraderError);
a crash, a limit or a hang after the student's code ran is the student's (RunnerFailure).
"""

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from autograder import sandbox
from autograder.assignment.forbidden_imports import LIBRARY, forbidden_paths
from autograder.errors import GraderError
from autograder.runner.channel import MalformedMessage, read_message

AUTOGRADER = Path(__file__).resolve().parents[1]
REPO_ROOT = AUTOGRADER.parent
# what the runner may see of the repository: this folder, the package marker and the library
VISIBLE = (AUTOGRADER / "__init__.py", AUTOGRADER / "runner", LIBRARY)
# skip_unused_optional_imports: Keras on TensorFlow imports scikit-learn, JAX and matplotlib
# only because they are installed, a third of its start-up (diffusion_course/lean_imports.py)
BOOT = (f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); "
        "from diffusion_course.lean_imports import skip_unused_optional_imports; "
        "skip_unused_optional_imports(); "
        "from autograder.runner.student_runner import main; main()")
MAX_MESSAGE_BYTES = 512 * 2**20  # the full profile's weights are about 40 MiB
STDERR_TAIL_BYTES = 64 * 2**10
PROGRESS_WINDOW_S = 30  # a run that gave a sign of life this recently was not stuck


class RunnerFailure(Exception):
    """The student's code made the runner fail: a crash, a hang, a limit, a forged result."""

    def __init__(self, message, limit=None):
        super().__init__(message)
        self.limit = limit


def classify_failure(what, evidence):
    """The exception (GraderError or RunnerFailure) that the evidence of a failed run points to.

    evidence: {"report": the sandbox report or None, "returncode": int or None, "timed_out":
    seconds or None, "ready", "student_code_ran", "cancelled" (by us): bools,
    "seconds_since_progress": float or None, "runner_error": the runner's error record or None,
    "malformed": str or None}.
    """
    report = evidence.get("report") or {}
    ran = evidence.get("student_code_ran", False)
    returncode = evidence.get("returncode")
    if report.get("setup_error") or returncode == sandbox.SETUP_FAILED:
        return GraderError(f"the sandbox could not be set up for the {what}: "
                           f"{report.get('setup_error') or 'exit status 125'}")
    if report.get("limit"):
        if not ran:
            return GraderError(f"the {what} hit the {report['limit']} before any student code "
                               f"ran: the limit is too tight for the grader itself")
        return RunnerFailure(f"{report['limit']} in the {what}", limit=report["limit"])
    timeout = evidence.get("timed_out")
    if timeout is not None:
        since_progress = evidence.get("seconds_since_progress")
        if not evidence.get("ready") or not ran:
            return GraderError(f"the {what} did not get to the student's code within {timeout} "
                               f"s (the machine is too slow or overloaded)")
        if since_progress is not None and since_progress < PROGRESS_WINDOW_S:
            return GraderError(f"the {what} was still making progress when its {timeout} s "
                               f"ran out (the machine is too slow or overloaded)")
        return RunnerFailure(f"the {what} did not finish within {timeout} s and was stopped")
    if ran and evidence.get("malformed"):
        return RunnerFailure(f"the {what} sent a malformed result ({evidence['malformed']})")
    killed_by = report.get("signal") or (-returncode if returncode and returncode < 0 else None)
    if killed_by == signal.SIGKILL and not evidence.get("cancelled"):
        # not a limit and not our timeout: the machine (out of memory?) or an operator
        return GraderError(f"the {what} was killed from outside (SIGKILL, no limit reached)")
    if not ran:
        error = evidence.get("runner_error") or {}
        cause = (f"{error.get('type')}: {error.get('message')}" if error else
                 evidence.get("malformed") or f"exit status {returncode}")
        return GraderError(f"the {what} failed before running any student code ({cause})")
    if killed_by:
        return RunnerFailure(f"the {what} crashed (killed by signal {killed_by})")
    if evidence.get("runner_error"):
        error = evidence["runner_error"]
        return RunnerFailure(f"the {what} crashed ({error.get('type')}: "
                             f"{str(error.get('message'))[:500]})")
    return RunnerFailure(f"the {what} crashed (exit code {returncode})")


def _environment():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow",
            # several TensorFlow processes may share one GPU
            "TF_FORCE_GPU_ALLOW_GROWTH": "true", "PYTHONDONTWRITEBYTECODE": "1",
            # as in the grading kernel: the release's cells run in grading mode (quick
            # profile, synthetic data, offline KID features; see notebook_pass.py), and plots
            # are drawn nowhere
            "NBGRADER_EXECUTION": "autograde", "MPLBACKEND": "Agg"}


class RunnerProcess:
    """One sandboxed student runner, started at once; `wait_for` collects its messages."""

    def __init__(self, request, what, timeout, session_folder, secret=False):
        self.what = what
        # a run that holds solution code: its output and errors never reach the feedback
        self.secret = secret
        self.timeout = timeout
        # the report sits beside the work folder, in a folder the sandbox does not show
        folder = Path(tempfile.mkdtemp(prefix="runner-", dir=session_folder))
        work = folder / "work"
        work.mkdir()
        self.report_path = folder / "sandbox-report.json"
        command = sandbox.command([sys.executable, "-I", "-c", BOOT], allow=VISIBLE,
                                  write=(work,), mask=forbidden_paths(), limits="runner",
                                  report=self.report_path)
        self.process = subprocess.Popen(command, cwd=work, env=_environment(),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, start_new_session=True)
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self.messages = queue.Queue()
        self.evidence = {"ready": False, "student_code_ran": False, "runner_error": None,
                         "malformed": None, "cancelled": False}
        self.last_progress = None
        self.stderr_tail = b""
        request_bytes = json.dumps(request).encode()
        for target, argument in ((self._send_request, request_bytes), (self._read_messages, None),
                                 (self._read_stderr, None)):
            threading.Thread(target=target, args=(argument,), daemon=True).start()

    # ---- the three pipes, each read or written by its own thread ----------------------

    def _send_request(self, request_bytes):
        try:
            with self.process.stdin as stdin:
                stdin.write(request_bytes)
        except OSError:
            pass  # the runner died first; its exit says why

    def _read_messages(self, _):
        try:
            while (message := read_message(self.process.stdout, MAX_MESSAGE_BYTES)) is not None:
                self.messages.put(message)
        except (MalformedMessage, EOFError) as error:
            self.messages.put({"event": "malformed", "reason": str(error)[:300]})
            self.process.stdout.read()  # drained, so that a runner still writing cannot block
        self.messages.put({"event": "end"})

    def _read_stderr(self, _):
        while chunk := self.process.stderr.read(8192):
            self.stderr_tail = (self.stderr_tail + chunk)[-STDERR_TAIL_BYTES:]

    # ---- results ----------------------------------------------------------------------

    def wait_for(self, event):
        """The runner's message `event`, or the exception its failure points to (raised)."""
        while True:
            try:
                message = self.messages.get(timeout=max(0.0, self.deadline - time.monotonic()))
            except queue.Empty:
                self.cancel()
                raise self._failure(timed_out=self.timeout) from None
            kind = message.get("event")
            self.last_progress = time.monotonic()
            if kind == event:
                return message
            if kind == "ready":
                self.evidence["ready"] = True
            elif kind == "student_code":
                self.evidence["student_code_ran"] = True
            elif kind == "runner_error":
                self.evidence["runner_error"] = message.get("error")
            elif kind == "malformed":
                self.evidence["malformed"] = message.get("reason")
                self.cancel()
            elif kind == "end":
                self._wait_for_exit()
                raise self._failure()

    def _wait_for_exit(self):
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.cancel()

    def _failure(self, timed_out=None):
        since = None if self.last_progress is None else time.monotonic() - self.last_progress
        evidence = {**self.evidence, "report": self.report(), "timed_out": timed_out,
                    "returncode": self.process.returncode, "seconds_since_progress": since}
        failure = classify_failure(self.what, evidence)
        if not isinstance(failure, RunnerFailure) or failure.limit is not None:
            return failure
        if self.secret:
            return RunnerFailure(f"the {self.what} failed (its output is withheld: the run held "
                                 "solution code)")
        tail = self.output_tail()
        if tail:
            failure.args = (f"{failure.args[0]}; its last output:\n{tail}",)
        return failure

    def report(self):
        """The sandbox's report of this run (None without one: the sandbox was off)."""
        if self.process.poll() is None or not self.report_path.exists():
            return None
        try:
            return sandbox.read_report(self.report_path)
        except (OSError, ValueError) as error:
            raise GraderError(f"the sandbox report of the {self.what} is unreadable "
                              f"({error})") from None

    def output_tail(self, num_lines=8):
        lines = self.stderr_tail.decode(errors="replace").splitlines()
        # TensorFlow's start-up notices are noise here
        lines = [line for line in lines if not line.startswith(("I0000", "WARNING: All log"))]
        return "\n".join(lines[-num_lines:])

    def cancel(self):
        """Stops the runner and everything it started: they share its session's process group."""
        if self.process.poll() is None:
            self.evidence["cancelled"] = True
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
