"""Runs student code (the grading kernel, the judge's student runner) where it cannot reach
the course's secrets or outlive grading.

It uses Linux namespaces through `unshare`, which needs root (or unprivileged user namespaces):
- a mount namespace in which everything under the course root and the repository is covered by
  empty read-only mounts, except what the student's code needs: its own working folder, the
  library (mounted read-only) and the Python environment. The solutions, the gradebook, other
  students' submissions and the git history are not there;
- a PID namespace: every process the student's code starts dies with it, so a detached process
  cannot wait for grading to end and then rewrite `gradebook.db`;
- a network namespace (only with `--no-network`, when the kernel talks over IPC sockets).

    python -m autograder.sandbox run [--allow PATH]... [--no-network] -- COMMAND...

`AUTOGRADER_SANDBOX=off` runs COMMAND directly (unprotected, and the grade report says so).
Otherwise a sandbox that cannot be set up is an error: grading never continues unprotected when
protection was asked for.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LIBRARY = REPO_ROOT / "diffusion_course"
MODE_VARIABLE = "AUTOGRADER_SANDBOX"
COURSE_ROOT_VARIABLE = "AUTOGRADER_COURSE_ROOT"


class SandboxUnavailableError(RuntimeError):
    """The namespaces cannot be created here (not root, or no unshare)."""


def mode():
    value = os.environ.get(MODE_VARIABLE, "required")
    if value not in ("required", "off"):
        raise SystemExit(f"{MODE_VARIABLE}={value!r} is invalid: use 'required' or 'off'.")
    return value


def check_available():
    """Raises SandboxUnavailableError with the reason when namespaces cannot be made."""
    if shutil.which("unshare") is None:
        raise SandboxUnavailableError("the `unshare` command (util-linux) is not installed")
    probe = subprocess.run(["unshare", "--mount", "--pid", "--net", "--fork", "--kill-child",
                            "--mount-proc", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise SandboxUnavailableError(
            f"`unshare` cannot create mount/PID/network namespaces here "
            f"({probe.stderr.strip() or 'exit code ' + str(probe.returncode)}); grading "
            "with protection needs root or unprivileged user namespaces")


def covered_paths(root, allowed):
    """Everything under `root` to cover so that only `allowed` paths (and their parents) show."""
    root = Path(root).resolve()
    allowed = [Path(path).resolve() for path in allowed]
    if any(path == root for path in allowed):
        return []
    covered = []
    for entry in sorted(root.iterdir()):
        if entry.is_symlink():
            continue  # a link's target is covered (or allowed) where it really lives
        leads_to_allowed = [path for path in allowed if path == entry or entry in path.parents]
        if not leads_to_allowed:
            covered.append(entry)
        elif entry.is_dir() and entry not in leads_to_allowed:
            covered.extend(covered_paths(entry, allowed))
    return covered


def _mount(*arguments):
    subprocess.run(["mount", *arguments], check=True, capture_output=True)


def _cover(path):
    if path.is_dir():
        _mount("-t", "tmpfs", "-o", "ro,size=4k,mode=555", "sandbox", str(path))
    else:
        _mount("--bind", "-o", "ro", "/dev/null", str(path))


def _read_only(path):
    _mount("--bind", str(path), str(path))
    _mount("-o", "remount,ro,bind", str(path))


def _inside(plan, command):
    """Runs in the new namespaces: apply the mounts, then run the command as a child."""
    _mount("--make-rprivate", "/")
    for path in plan["covered"]:
        _cover(Path(path))
    for path in plan["read_only"]:
        _read_only(Path(path))
    # ipykernel shuts down when its parent looks like PID 1 (an orphan); in this namespace the
    # parent *is* PID 1, so its parent poller is turned off. The namespace cleans up instead.
    environment = {key: value for key, value in os.environ.items() if key != "JPY_PARENT_PID"}
    child = subprocess.Popen(command, env=environment)
    for forwarded in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(forwarded, lambda number, _: child.send_signal(number))
    # when this process (PID 1 of the namespace) exits, the kernel kills every process left
    return child.wait()


def plan_for(allowed_extra=()):
    """Which paths to cover and which to make read-only, for code started in the cwd."""
    roots = {REPO_ROOT}
    if os.environ.get(COURSE_ROOT_VARIABLE):
        roots.add(Path(os.environ[COURSE_ROOT_VARIABLE]).resolve())
    allowed = [Path.cwd(), LIBRARY, Path(sys.prefix), *map(Path, allowed_extra)]
    covered = sorted({str(path) for root in roots for path in covered_paths(root, allowed)})
    return {"covered": covered, "read_only": [str(LIBRARY)]}


def run(command, allowed_extra=(), network=True):
    """Runs `command` in the sandbox (or directly when AUTOGRADER_SANDBOX=off); returns its code."""
    if mode() == "off":
        return subprocess.call(command)
    check_available()
    namespaces = ["--mount", "--pid", "--fork", "--kill-child", "--mount-proc"]
    if not network:
        namespaces.append("--net")
    plan = json.dumps(plan_for(allowed_extra))
    inner = [sys.executable, "-m", "autograder.sandbox", "_inside", plan, "--", *command]
    return subprocess.call(["unshare", *namespaces, "--", *inner])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder.sandbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="action", required=True)
    run_parser = commands.add_parser("run", help="run a command in the sandbox")
    run_parser.add_argument("--allow", action="append", default=[],
                            help="a path that stays visible (repeatable)")
    run_parser.add_argument("--no-network", action="store_true",
                            help="also cut the network (the command must not need TCP)")
    run_parser.add_argument("command", nargs=argparse.REMAINDER)
    inside_parser = commands.add_parser("_inside")
    inside_parser.add_argument("plan")
    inside_parser.add_argument("command", nargs=argparse.REMAINDER)
    commands.add_parser("check", help="say whether the sandbox can be used here")
    arguments = parser.parse_args(argv)

    if arguments.action == "check":
        check_available()
        print("sandbox available: mount, PID and network namespaces")
        return 0
    command = arguments.command[1:] if arguments.command[:1] == ["--"] else arguments.command
    if command and command[0] in ("python", "python3"):
        command[0] = sys.executable  # the interpreter of this environment, like jupyter_client
    if arguments.action == "_inside":
        return _inside(json.loads(arguments.plan), command)
    try:
        return run(command, arguments.allow, network=not arguments.no_network)
    except SandboxUnavailableError as error:
        print(f"autograder sandbox: {error}. Refusing to run student code unprotected; set "
              f"{MODE_VARIABLE}=off to grade without protection.", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
