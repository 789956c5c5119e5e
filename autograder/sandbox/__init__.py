"""Confines a process, whatever it runs, where it has no power: the grading kernel and the
judge's student runner (runner/) are both started through it.

Built on bubblewrap (`bwrap`), the sandbox of Flatpak: a small, audited, setuid-free tool whose
one job is to start a process in new namespaces on a root it builds from an allow-list.

- Root mode (the grader runs as root): bwrap builds the new root as root, then `setpriv` drops to
  a dedicated uid/gid of the sandbox's own (one per concurrent sandbox, never root or a person),
  with no capabilities, an empty bounding set and no_new_privs. Limits: a cgroup (memory with no
  swap, process count, CPU share) where writable, rlimits otherwise.
- User-namespace mode (no root, unprivileged user namespaces allowed): bwrap alone, as the
  caller's uid inside a new user namespace that cannot make further ones; limits by rlimits.
- Always: new mount, PID, IPC, UTS and network namespaces; the system and the Python
  environment read-only; private tmpfs /tmp, /dev/shm and $HOME; only the paths the caller
  names (`--allow` read-only, `--write` read-write); the environment cleared to safe names; a
  seccomp filter against the system calls exploits favour (seccomp.py).

The files: plan.py (the mounts), cgroups.py and ../limits.py (the limits), seccomp.py,
supervisor.py (the trusted wrapper and its report), kernel.py (the grading kernel's side).

    python -m autograder.sandbox run [--allow PATH]... [--write PATH]... [--mask PATH]...
                                     [--limits kernel|runner] [--report FILE] [--private-cwd]
                                     [--kernel-connection FILE] -- COMMAND...
    python -m autograder.sandbox check

Exit status: the command's own; SETUP_FAILED (125) when the sandbox could not be set up, which
is the grader's fault, never the student's. `AUTOGRADER_SANDBOX=off` runs COMMAND unconfined
(and the grade report says so); otherwise grading never continues unprotected.
"""

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from autograder.intake.no_follow import open_no_follow
from autograder.limits import LIMITS, SANDBOX_UID_BASE
from autograder.sandbox import seccomp

SETUP_FAILED = 125
MODE_VARIABLE = "AUTOGRADER_SANDBOX"
REPORT_MAX_BYTES = 64 * 1024
REPORT_KEYS = {"setup_error", "limit", "returncode", "signal", "wall_s"}
# the trusted wrapper: without `site` (-S: it needs the standard library only, and starts 0.1 s
# sooner) and without the cwd on sys.path (-P: the cwd may be the student's folder). It imports
# `autograder` from this checkout, whatever the caller's PYTHONPATH says.
_CHECKOUT = str(Path(__file__).resolve().parents[2])
WRAPPER = (sys.executable, "-S", "-P", "-c",
           f"import sys; sys.path.insert(0, {_CHECKOUT!r}); "
           "from autograder.sandbox.__main__ import main; sys.exit(main())")


class SandboxUnavailableError(RuntimeError):
    """Neither root nor unprivileged user namespaces, or bwrap/setpriv missing."""


def mode():
    """"required" (the default) or "off" (AUTOGRADER_SANDBOX=off: run unconfined)."""
    value = os.environ.get(MODE_VARIABLE, "required")
    if value not in ("required", "off"):
        raise SystemExit(f"{MODE_VARIABLE}={value!r} is invalid: use 'required' or 'off'.")
    return value


def _probe(argv):
    try:
        probe = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    return None if probe.returncode == 0 else (probe.stderr.strip() or f"exit {probe.returncode}")


def protection():
    """"root" or "userns": how the sandbox is made here; raises SandboxUnavailableError."""
    if not seccomp.supported():
        raise SandboxUnavailableError(
            f"this machine is {platform.machine()}, and the sandbox's seccomp filter describes "
            "only x86-64 system calls (autograder/sandbox/seccomp.py): without it, student code "
            "could make user namespaces and mounts and reach eBPF, io_uring and ptrace. Grade on "
            f"an x86-64 machine; {MODE_VARIABLE}=off grades with no protection at all (student "
            "code then runs as you, and can read and change everything you can)")
    if shutil.which("bwrap") is None:
        raise SandboxUnavailableError("`bwrap` (Debian package bubblewrap) is not installed")
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            raise SandboxUnavailableError("`setpriv` (util-linux) is not installed")
        failure = _probe(["bwrap", "--unshare-pid", "--unshare-net", "--ro-bind", "/", "/",
                          "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add",
                          "CAP_SETPCAP", "setpriv", "--reuid", str(SANDBOX_UID_BASE),
                          "--regid", str(SANDBOX_UID_BASE), "--clear-groups", "--no-new-privs",
                          "true"])
        if failure is None:
            return "root"
        raise SandboxUnavailableError(f"bwrap cannot make namespaces as root here ({failure})")
    failure = _probe(["bwrap", "--unshare-all", "--unshare-user", "--disable-userns",
                      "--ro-bind", "/", "/", "true"])
    if failure is None:
        return "userns"
    raise SandboxUnavailableError(
        f"without root, bwrap needs unprivileged user namespaces, which fail here ({failure}); "
        "grade as root or on a machine that allows them")


def check_available():
    """Raises SandboxUnavailableError with the reason when no sandbox can be made here."""
    protection()


def command(command, allow=(), write=(), mask=(), limits="runner", report=None,
            private_cwd=False, kernel_connection=None):
    """The full argv (the trusted wrapper first) that runs `command` in the sandbox.

    Start it with the cwd you want the command to have: one of `write`, or any folder with
    `private_cwd` (it then shows as a fresh empty folder).
    """
    if limits not in LIMITS:
        raise ValueError(f"limits={limits!r}: use one of {sorted(LIMITS)}")
    argv = [*WRAPPER, "run", "--limits", limits]
    for flag, paths in (("--allow", allow), ("--write", write), ("--mask", mask)):
        for path in paths:
            argv += [flag, os.fspath(path)]
    if report is not None:
        argv += ["--report", os.fspath(report)]
    if private_cwd:
        argv.append("--private-cwd")
    if kernel_connection is not None:
        argv += ["--kernel-connection", os.fspath(kernel_connection)]
    return [*argv, "--", *map(os.fspath, command)]


def read_report(path):
    """The wrapper's report, read without following links and with a size cap."""
    with open_no_follow(path) as file:
        content = file.read(REPORT_MAX_BYTES + 1)
    if len(content) > REPORT_MAX_BYTES:
        raise ValueError(f"{path}: the sandbox report is larger than {REPORT_MAX_BYTES} bytes")
    report = json.loads(content)
    if not isinstance(report, dict) or not REPORT_KEYS <= set(report):
        raise ValueError(f"{path}: not a sandbox report (keys {sorted(REPORT_KEYS)} expected)")
    return report
