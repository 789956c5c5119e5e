"""`python -m autograder.hub start|status|stop|nbgrader`: the course hub on this machine.

    python -m autograder.hub start --course DIR --users students.csv [--port 8000]
    python -m autograder.hub status
    python -m autograder.hub stop
    python -m autograder.hub nbgrader COURSE_ID collect ddim    # any nbgrader command, with
                                                                # the course's settings

`start` is idempotent: a running hub with the same courses is left alone; another course (a
second --course) is added to it, and the hub restarts in seconds (people's servers live on).
Run as root: it makes the listed Unix accounts and runs each person's server as them.
"""

import argparse
import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

from autograder.hub import course, process, roster

COURSE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,23}$")


def default_hub_dir():
    return Path(os.environ.get("AUTOGRADER_SERVICES", "/tmp/autograder-services")) / "hub"


def read_state(hub_dir):
    path = Path(hub_dir) / "state.json"
    return json.loads(path.read_text()) if path.exists() else {"courses": {}}


def service_ports(state):
    return [state["port"] + 10 + index for index in range(len(state.get("courses", {})))]


def hide_repository():
    """This repository (the answers, the grader) is root's alone: mode 0700."""
    mode = stat.S_IMODE(course.REPO_ROOT.stat().st_mode)
    if mode & 0o077:
        os.chmod(course.REPO_ROOT, mode & 0o700)
        print(f"Made {course.REPO_ROOT} private to root (mode 0700): students' servers must "
              "not read it.")


def start_bundle(hub_dir, bundle):
    """Starts building the student bundle, once, into the hub's folder (unless --bundle gave
    one); returns (its folder, the build's process or None)."""
    if bundle is not None:
        return Path(bundle), None
    bundle = Path(hub_dir) / "bundle"
    if any(bundle.glob("wheels/*.whl")):
        return bundle, None
    print("Building the student bundle (once) ...", flush=True)
    return bundle, subprocess.Popen(
        [sys.executable, "-m", "autograder", "bundle", "--out", str(bundle), "--force"],
        cwd=course.REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def student_wheel(bundle, build):
    """The student wheel of `bundle`, once its build (if any) has finished."""
    if build is not None and build.wait() != 0:
        raise SystemExit(f"python -m autograder bundle failed:\n{build.stderr.read()[-3000:]}")
    wheels = sorted(Path(bundle).glob("wheels/diffusion_course_student-*.whl"))
    if not wheels:
        raise SystemExit(f"--bundle {bundle}: no wheels/diffusion_course_student-*.whl in it; "
                         "build one with python -m autograder bundle --out DIR")
    return wheels[-1]


def start(arguments):
    if os.geteuid() != 0:
        raise SystemExit("Run as root: the hub makes the listed Unix accounts and runs each "
                         "person's server as them.")
    started = time.monotonic()
    course_root = Path(arguments.course).resolve()
    course_id = arguments.course_id or course_root.name.lower()
    if not COURSE_ID.match(course_id):
        raise SystemExit(f"course id {course_id!r}: use 1-24 lower-case letters, digits, _ or - "
                         "(--course-id)")
    try:
        people = roster.read_roster(arguments.users)
    except roster.RosterError as error:
        raise SystemExit(str(error)) from None
    hub_dir = Path(arguments.hub_dir).resolve()
    hub_dir.mkdir(parents=True, exist_ok=True)
    closed = [str(parent) for parent in hub_dir.parents if not parent.stat().st_mode & 0o001]
    if closed:
        raise SystemExit(f"--hub-dir {hub_dir}: students must pass through it to their Python "
                         f"and the exchange, but {closed[0]} is closed to them (no o+x). "
                         "Choose a hub folder under an open one, such as /srv or /tmp.")
    os.chmod(hub_dir, 0o711)  # others may only pass through, to the students' Python and exchange
    hide_repository()

    new_accounts = roster.ensure_accounts(people, course_id, hub_dir / "initial_passwords.csv")
    if new_accounts:
        print(f"Made {len(new_accounts)} Unix account(s); their passwords are in "
              f"{hub_dir / 'initial_passwords.csv'} (root only)")
    timings = {"accounts": time.monotonic() - started}
    bundle, build = start_bundle(hub_dir, arguments.bundle)  # meanwhile, the course folder
    course.prepare_course_folder(course_root)
    course.prepare_exchange(hub_dir / "exchange", course_id)
    course.write_settings(hub_dir, course_id, hub_dir / "exchange")
    timings["course folder"] = time.monotonic() - started - sum(timings.values())
    wheel = student_wheel(bundle, build)
    timings["student bundle"] = time.monotonic() - started - sum(timings.values())
    from autograder.hub import student_python  # nbgrader's imports, once the input is checked

    python = student_python.ensure_student_python(hub_dir / "python", wheel,
                                                  hub_dir / "exchange")
    timings["students' Python"] = time.monotonic() - started - sum(timings.values())

    state = read_state(hub_dir)
    wanted = {**state, "port": arguments.port, "ip": arguments.ip,
              "courses": {**state["courses"],
                          course_id: {"root": str(course_root), "people": people}}}
    running = process.hub_pid(hub_dir)
    if running and wanted == state:
        print(f"The hub is running (pid {running}) at http://{arguments.ip}:{arguments.port}/")
        return 0
    if running:  # another course or setting: a new hub; the people's servers live on
        process.stop(hub_dir, service_ports(state), servers_too=False)
    (hub_dir / "state.json").write_text(json.dumps(wanted, indent=1))
    from autograder.hub import hub_config

    config = hub_config.write_hub_config(hub_dir, wanted, python)
    pid, timings["hub"] = process.start(hub_dir, config, arguments.port, service_ports(wanted))
    print("Started in " + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in
                                    timings.items()) + f": {time.monotonic() - started:.1f} s")
    print(f"The hub is running (pid {pid}) at http://{arguments.ip}:{arguments.port}/; "
          f"courses: {', '.join(wanted['courses'])}; "
          f"formgrader: /services/formgrader-{course_id}/ ; log: {hub_dir / 'jupyterhub.log'}")
    return 0


def status(arguments):
    state = read_state(arguments.hub_dir)
    pid = process.hub_pid(arguments.hub_dir)
    if not pid:
        print(f"The hub is not running ({arguments.hub_dir}).")
        return 1
    print(f"The hub is running (pid {pid}) at http://{state['ip']}:{state['port']}/; "
          f"courses: {', '.join(state['courses'])}")
    return 0


def stop(arguments):
    state = read_state(arguments.hub_dir)
    if process.hub_pid(arguments.hub_dir) or state.get("courses"):
        process.stop(arguments.hub_dir, service_ports(state) if "port" in state else [])
    print("The hub is stopped.")
    return 0


def nbgrader(arguments):
    state = read_state(arguments.hub_dir)
    if arguments.course_id not in state["courses"]:
        raise SystemExit(f"no course {arguments.course_id!r} on this hub; it has: "
                         f"{', '.join(state['courses']) or 'none'}")
    root = state["courses"][arguments.course_id]["root"]
    return course.run_nbgrader(arguments.hub_dir, arguments.course_id, root, arguments.arguments)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder.hub", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hub-dir", type=Path, default=default_hub_dir(),
                        help="the hub's state (default: $AUTOGRADER_SERVICES/hub)")
    commands = parser.add_subparsers(dest="command", required=True)
    start_parser = commands.add_parser("start", help="start the hub (or add a course to it)")
    start_parser.add_argument("--course", required=True, help="the course folder (made if new)")
    start_parser.add_argument("--users", required=True, help="CSV: username,role")
    start_parser.add_argument("--course-id", help="default: the course folder's name")
    start_parser.add_argument("--port", type=int, default=8000)
    start_parser.add_argument("--ip", default="127.0.0.1", help="0.0.0.0 to serve the network "
                              "(put TLS in front of it)")
    start_parser.add_argument("--bundle", type=Path,
                              help="a built student bundle (default: build one once)")
    commands.add_parser("status", help="is the hub running?")
    commands.add_parser("stop", help="stop the hub and everyone's servers")
    grader = commands.add_parser("nbgrader", help="run nbgrader with a course's settings")
    grader.add_argument("course_id")
    grader.add_argument("arguments", nargs=argparse.REMAINDER)
    arguments = parser.parse_args(argv)
    return {"start": start, "status": status, "stop": stop,
            "nbgrader": nbgrader}[arguments.command](arguments)


if __name__ == "__main__":
    sys.exit(main())
