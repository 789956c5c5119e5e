"""python -m autograder.sandbox run|check: see autograder/sandbox/__init__.py."""

import argparse
import os
import sys

from autograder import sandbox
from autograder.limits import LIMITS, SANDBOX_UID_BASE
from autograder.sandbox import supervisor
from autograder.sandbox.cgroups import Cgroup


def check():
    """Prints the mode in force and what each protection rests on; 0 when usable."""
    if sandbox.mode() == "off":
        print(f"{sandbox.MODE_VARIABLE}=off: student code runs UNCONFINED (no protection)")
        return 0
    try:
        how = sandbox.protection()
    except sandbox.SandboxUnavailableError as error:
        print(f"sandbox unavailable: {error}. Grading refuses to run student code; set "
              f"{sandbox.MODE_VARIABLE}=off to grade without protection.")
        return 1
    limits = LIMITS["runner"]
    if how == "root":
        cgroup = Cgroup.create("autograder-sandbox-check", limits)
        if cgroup is not None:
            cgroup.remove()
        enforced = cgroup.describe() if cgroup else "rlimits (no writable cgroup)"
        print("mode: root + bwrap + setpriv")
        print(f"  identity: uids/gids {SANDBOX_UID_BASE}+slot (one per running sandbox), no "
              "capabilities, empty bounding set, no_new_privs (setpriv)")
        print(f"  memory, processes, CPU share: {enforced}; "
              "file size, CPU time: rlimits; wall time, output, disk: the trusted wrapper")
    else:
        print("mode: unprivileged user namespaces (bwrap without root)")
        print(f"  identity: your own uid {os.getuid()} inside a user namespace with no "
              "capabilities outside it and no further user namespaces (--disable-userns)")
        print("  memory: RLIMIT_AS (address space); file size, CPU time: rlimits; processes: "
              "not limited; wall time, output, disk: the trusted wrapper")
    print("  namespaces: mount, PID, IPC, UTS, network (bwrap); filesystem: an allow-list, "
          "read-only except private tmpfs /tmp, /dev/shm, $HOME and the --write folders")
    print("  system calls: a seccomp filter refuses new user namespaces, mounts, keyrings, eBPF, "
          "io_uring, perf events, ptrace")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder.sandbox",
                                     description=sandbox.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="action", required=True)
    run = commands.add_parser("run", help="run a command in the sandbox")
    run.add_argument("--allow", action="append", default=[], help="visible read-only")
    run.add_argument("--write", action="append", default=[], help="visible read-write")
    run.add_argument("--mask", action="append", default=[], help="shows as empty")
    run.add_argument("--limits", choices=sorted(LIMITS), default="runner")
    run.add_argument("--report", help="where the trusted wrapper writes its JSON report")
    run.add_argument("--private-cwd", action="store_true",
                     help="the cwd shows as a fresh, empty, private folder")
    run.add_argument("--kernel-connection", metavar="FILE",
                     help="a Jupyter kernel's connection file, in a folder of its own")
    run.add_argument("command", nargs=argparse.REMAINDER)
    commands.add_parser("check", help="say which mode is in force and what it rests on")
    arguments = parser.parse_args(argv)
    if arguments.action == "check":
        return check()
    command = arguments.command[1:] if arguments.command[:1] == ["--"] else arguments.command
    if not command:
        parser.error("run: give the COMMAND after --")
    if command[0] in ("python", "python3"):
        command[0] = sys.executable  # the interpreter of this environment, like jupyter_client
    watcher = supervisor.Supervisor(command, arguments.allow, arguments.write, arguments.mask,
                                    arguments.limits, arguments.private_cwd,
                                    arguments.kernel_connection, arguments.report)
    returncode = watcher.run()
    report = watcher.report
    if report["setup_error"]:
        print(f"autograder sandbox: {report['setup_error']}", file=sys.stderr)
    elif report["limit"]:
        print(f"autograder sandbox: {report['limit']}", file=sys.stderr)
    if arguments.report:
        supervisor.write_report(report, arguments.report)
    return returncode


if __name__ == "__main__":
    sys.exit(main())
