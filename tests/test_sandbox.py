"""Attacks on the grading sandbox, one per defence, through `python -m autograder.sandbox run`.

Each test plays hostile student code (a shell or Python one-liner) and checks, from outside,
that the attack did nothing and, where a limit stopped it, that the report names the limit.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autograder import sandbox
from autograder.limits import LIMITS, SANDBOX_SLOTS, SANDBOX_UID_BASE

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNNER = LIMITS["runner"]


def _available():
    try:
        sandbox.check_available()
        return True
    except sandbox.SandboxUnavailableError:
        return False


pytestmark = pytest.mark.skipif(not _available(), reason="no sandbox here (needs root or "
                                                        "unprivileged user namespaces)")
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="root mode only")


@pytest.fixture
def course(tmp_path):
    """A course folder: solutions, a gradebook, two students; alice's work folder is cwd."""
    (tmp_path / "solutions" / "ddim").mkdir(parents=True)
    (tmp_path / "solutions" / "ddim" / "ddim.ipynb").write_text("the answers")
    (tmp_path / "gradebook.db").write_text("grades")
    for student in ("alice", "bob"):
        (tmp_path / "autograded" / student / "ddim").mkdir(parents=True)
        (tmp_path / "autograded" / student / "ddim" / "ddim.ipynb").write_text(student)
    return tmp_path


def run(work, command, *flags, timeout=120, prefix=()):
    """Runs `command` (argv) sandboxed with `work` as its writable cwd; (result, report)."""
    report_path = work.parent / f".report-{work.name}.json"
    argv = sandbox.command(command, write=[work], report=report_path)
    argv[argv.index("--"):argv.index("--")] = flags
    result = subprocess.run([*prefix, *argv], cwd=work, capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    return result, sandbox.read_report(report_path)


def python(code):
    return [sys.executable, "-c", code]


def alice(course):
    return course / "autograded" / "alice" / "ddim"


# ---- privilege and mounts ----------------------------------------------------------------


def test_student_code_has_no_privilege(course):
    result, _ = run(alice(course), ["sh", "-c", "id -u; grep -E '^(Cap|NoNewPrivs)' "
                                                "/proc/self/status"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[0] != "0", "student code runs as root"
    if os.geteuid() == 0:
        assert SANDBOX_UID_BASE <= int(lines[0]) < SANDBOX_UID_BASE + SANDBOX_SLOTS
    status = dict(zip(lines[1::2], lines[2::2]))
    for name in ("CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"):
        assert int(status[name], 16) == 0, (name, status[name])
    assert status["NoNewPrivs:"] == "1"


def test_unmounting_or_remounting_reveals_and_unlocks_nothing(course):
    attack = f"""
for target in $(awk '{{print $2}}' /proc/self/mounts | sort -r); do
    umount -l "$target" 2>/dev/null && echo "unmounted $target"
done
mount -o remount,rw / 2>/dev/null && echo "remounted /"
mount -o remount,rw {REPO_ROOT}/diffusion_course 2>/dev/null && echo "remounted the library"
unshare -Urm sh -c 'umount -l {REPO_ROOT}/diffusion_course && echo "unmounted in a userns"' \
    2>/dev/null
ls {course}/solutions/ddim 2>/dev/null && echo "SOLUTIONS VISIBLE"
touch {REPO_ROOT}/diffusion_course/planted.py 2>/dev/null && echo "LIBRARY WRITABLE"
true
"""
    result, _ = run(alice(course), ["sh", "-c", attack])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "", result.stdout
    assert not (REPO_ROOT / "diffusion_course" / "planted.py").exists()


def test_no_user_namespace_gives_capabilities_back(course):
    """A new user namespace would hand student code capabilities (inside it) and far more
    kernel code to attack: the seccomp filter refuses unshare and clone(CLONE_NEWUSER)."""
    probe = """
import ctypes, subprocess
libc = ctypes.CDLL(None, use_errno=True)
print(libc.unshare(0x10000000), subprocess.run(["unshare", "-U", "true"]).returncode)
"""
    result, _ = run(alice(course), python(probe))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["-1", "1"]


def test_the_course_the_solutions_and_other_students_are_not_there(course):
    probe = f"""
import os
for path in [{str(course / 'gradebook.db')!r}, {str(course / 'solutions')!r},
             {str(course / 'autograded' / 'bob')!r}, {str(REPO_ROOT / 'solutions')!r},
             {str(REPO_ROOT / 'autograder')!r}, {str(Path.home())!r} + '/.ssh',
             {str(REPO_ROOT / '.git')!r}]:
    print(path, os.path.exists(path))
"""
    result, _ = run(alice(course), python(probe))
    assert result.returncode == 0, result.stderr
    assert "True" not in result.stdout, result.stdout


def shared_places(course):
    """Every place that was writable by student code and that trusted code later uses."""
    site_packages = Path(next(p for p in sys.path if p.endswith("site-packages")))
    return [
        course / "gradebook.db",
        course / "solutions" / "ddim" / "ddim.ipynb",
        course / "autograded" / "bob" / "ddim" / "ddim.ipynb",
        course / "autograded" / "alice" / "planted.txt",
        # the grader's, in the student's work folder (without root the student is the grader)
        *([alice(course) / "request.json"] if os.geteuid() == 0 else []),
        REPO_ROOT / "autograder" / "judge.py",
        REPO_ROOT / "autograder" / "sandbox-attack.py",
        REPO_ROOT / "diffusion_course" / "__init__.py",
        site_packages / "sandbox-attack.pth",
        site_packages / "numpy" / "__pycache__" / "sandbox-attack.cpython-311.pyc",
        Path(sys.base_prefix) / "lib" / "sandbox-attack.py",
        Path.home() / ".jupyter" / "nbgrader_config.py",
        Path.home() / ".keras" / "keras.json",
        Path.home() / ".cache" / "diffusion-course" / "grader" / "sandbox-attack.json",
    ]


def test_no_formerly_shared_place_is_writable(course):
    places = shared_places(course)
    (alice(course) / "request.json").write_text("{}")
    before = {path: path.read_bytes() for path in places if path.is_file()}
    probe = f"""
import os
for path in {[str(path) for path in places]!r}:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a"):
            print("WROTE", path)
    except OSError:
        pass
    try:  # or replace it, by a link to a file the grader would then read or overwrite
        os.replace(path, path + ".moved")
        print("MOVED", path)
    except OSError:
        pass
"""
    try:
        result, _ = run(alice(course), python(probe))
        assert result.returncode == 0, result.stderr
        assert result.stdout == "", result.stdout
        # the shared temp folder, where concurrent students' requests were read: private now
        result, _ = run(alice(course), ["sh", "-c", f"echo forged > /tmp/{course.name}"])
        assert result.returncode == 0 and not (Path("/tmp") / course.name).exists()
    finally:  # should the defence fail, take the planted files away again
        for path in places:
            if path not in before and path.is_file():
                path.unlink()
    assert {path: path.read_bytes() for path in places if path.is_file()} == before


def test_core_pattern_and_sysctls_cannot_be_opened_for_writing(course):
    probe = """
for path in ["/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe", "/proc/sysrq-trigger"]:
    try:
        open(path, "w").close()
        print("OPENED", path)
    except OSError:
        pass
"""
    result, _ = run(alice(course), python(probe))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_no_network_reaches_a_listener_on_localhost(course):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    probe = f"""
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=5)
    print("CONNECTED")
except OSError as error:
    print("refused", error)
"""
    try:
        result, _ = run(alice(course), python(probe))
    finally:
        listener.close()
    assert result.returncode == 0, result.stderr
    assert "refused" in result.stdout


def test_a_masked_file_reads_as_empty(course, tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    (library / "schedules.py").write_text("SECRET = 1\n")
    (library / "data.py").write_text("PUBLIC = 1\n")
    result, _ = run(alice(course), ["sh", "-c", f"cat {library}/schedules.py {library}/data.py"],
                    "--allow", str(library), "--mask", str(library / "schedules.py"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "PUBLIC = 1\n"


def test_a_detached_process_dies_with_the_sandbox(course, tmp_path):
    started = alice(course) / "stray-started"
    marker = alice(course) / "stray-survived"
    # the stray marks that it runs; its parent waits for that mark, so the test knows it started
    probe = f"""
import pathlib, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time, pathlib; "
                  "pathlib.Path({str(started)!r}).touch(); time.sleep(1); "
                  "pathlib.Path({str(marker)!r}).touch()"], start_new_session=True)
deadline = time.monotonic() + 30
while not pathlib.Path({str(started)!r}).exists() and time.monotonic() < deadline:
    time.sleep(0.05)
"""
    result, _ = run(alice(course), python(probe))
    assert result.returncode == 0, result.stderr
    assert started.exists(), "the detached process never started, so the test proves nothing"
    time.sleep(2)
    assert not marker.exists(), "a detached process outlived the sandbox"


def test_the_sandbox_dies_when_the_grading_process_is_killed(course):
    """nbgrader killed with SIGKILL (or Ctrl-C mid-cleanup) must not leave a kernel running."""
    work = alice(course)
    started = work / "sandboxed-command-started"
    marker = work / "outlived-the-grader"
    argv = sandbox.command(python(f"import time, pathlib; pathlib.Path({str(started)!r}).touch(); "
                                  f"time.sleep(3); pathlib.Path({str(marker)!r}).touch()"),
                           write=[work])
    # a stand-in for nbgrader: starts the sandbox, then is killed before it finishes
    grader = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                               f"subprocess.Popen({argv!r}); time.sleep(60)"], cwd=work,
                              env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline and grader.poll() is None:
        time.sleep(0.05)
    grader.kill()
    grader.wait()
    assert started.exists(), "the sandboxed command never started, so the test proves nothing"
    time.sleep(4)
    assert not marker.exists(), "the sandboxed command outlived the process that started it"


@as_root
def test_concurrent_sandboxes_get_different_uids(course):
    outputs = []

    def student(work):
        outputs.append(run(work, ["sh", "-c", "id -u; sleep 1"])[0].stdout)

    threads = [threading.Thread(target=student, args=(course / "autograded" / name / "ddim",))
               for name in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(outputs)) == 2, outputs


# ---- set-up: grader faults, races ----------------------------------------------------------


def test_the_wrapper_starts_without_pythonpath_from_any_folder(course):
    """CI's fresh clone has no PYTHONPATH and `autograder` is not installed: the wrapper must
    still find itself (it once failed every judge run there with 'No module named autograder')."""
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    argv = sandbox.command(["true"], write=[alice(course)])
    result = subprocess.run(argv, cwd=alice(course), env=environment, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_a_setup_failure_exits_125_with_the_reason(course, tmp_path):
    result, report = run(alice(course), ["true"], "--allow", str(tmp_path / "missing"))
    assert result.returncode == sandbox.SETUP_FAILED
    assert "missing does not exist" in report["setup_error"]
    connection = tmp_path / "kernel" / "kernel.json"
    connection.parent.mkdir(mode=0o700)
    connection.write_text(json.dumps({"transport": "tcp", "ip": "127.0.0.1"}))
    result, report = run(alice(course), ["true"], "--kernel-connection", str(connection))
    assert result.returncode == sandbox.SETUP_FAILED
    assert "IPC sockets" in report["setup_error"]
    argv = sandbox.command(["true"], write=[alice(course)], report=alice(course) / "report.json")
    result = subprocess.run(argv, cwd=alice(course), capture_output=True, text=True)
    assert result.returncode == sandbox.SETUP_FAILED and "outside the --write" in result.stderr


def test_files_appearing_and_vanishing_in_the_course_folder_do_not_break_setup(course):
    stop = threading.Event()

    def churn():
        number = 0
        while not stop.is_set():
            number += 1
            path = course / f"lock-{number % 7}"
            try:
                if number % 3 == 0:
                    path.mkdir()
                    path.rmdir()
                elif number % 3 == 1:
                    path.write_text("x")
                    path.unlink()
                else:
                    path.symlink_to("/nonexistent")
                    path.unlink()
            except OSError:
                pass

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        results = [run(alice(course), ["true"]) for _ in range(4)]
    finally:
        stop.set()
        churner.join()
    assert [result.returncode for result, _ in results] == [0] * 4, results[0][0].stderr


def test_the_sandbox_refuses_to_run_unprotected(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("AUTOGRADER_SANDBOX", raising=False)
    with pytest.raises(sandbox.SandboxUnavailableError, match="bwrap"):
        sandbox.check_available()


def test_without_bwrap_a_run_fails_as_a_grader_error_unless_off(course, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    result, report = run(alice(course), ["/bin/true"])
    assert result.returncode == sandbox.SETUP_FAILED and "bwrap" in report["setup_error"]
    monkeypatch.setenv("AUTOGRADER_SANDBOX", "off")
    result, report = run(alice(course), ["/bin/sh", "-c", "exit 3"])
    assert result.returncode == 3 and report["mode"] == "off"


def test_check_says_which_mode_is_in_force():
    result = subprocess.run([sys.executable, "-m", "autograder.sandbox", "check"],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout
    expected = "root + bwrap + setpriv" if os.geteuid() == 0 else "user namespaces"
    assert expected in result.stdout


@as_root
@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="needs a system python")
def test_without_root_user_namespaces_serve(course):
    """As an unprivileged user (nobody), with the system Python: bwrap alone, no setpriv."""
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"sandbox-userns-{os.getpid()}"
    work.mkdir(mode=0o777)
    os.chmod(work, 0o777)
    nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "HOME": str(work)}
    planted = REPO_ROOT / "diffusion_course" / "planted_by_student"
    try:
        check = subprocess.run([*nobody, "/usr/bin/python3", "-m", "autograder.sandbox", "check"],
                               capture_output=True, text=True, cwd=work, env=environment)
        if "unavailable" in check.stdout:
            pytest.skip(check.stdout)
        assert "unprivileged user namespaces" in check.stdout, check.stdout + check.stderr
        result = subprocess.run(
            [*nobody, "/usr/bin/python3", "-m", "autograder.sandbox", "run", "--write", str(work),
             "--", "sh", "-c", f"id -u; ls {course} 2>&1 | head -1; touch {planted}"],
            capture_output=True, text=True, cwd=work, env=environment)
        assert result.stdout.splitlines()[0] == "65534", result.stdout + result.stderr
        assert "No such file" in result.stdout
        # the library is shown read-only (a checkout under /tmp sits on the private /tmp, so
        # the library is the one repository folder that is always a real, read-only mount)
        assert result.returncode != 0 and not planted.exists()
    finally:
        shutil.rmtree(work)


# ---- kernel ------------------------------------------------------------------------------


def test_a_kernel_sees_only_its_own_ipc_folder_and_a_fresh_cwd(course, monkeypatch):
    """A real sandboxed kernel over IPC. nbgrader's cwd holds the hidden tests in plain text;
    another kernel's connection file holds its key. Then the kernel floods its stdout: the
    sandbox stops it, and the kernel manager learns which limit did."""
    import asyncio

    from autograder.sandbox.kernel import PrivateKernelManager

    monkeypatch.setenv("JUPYTER_PATH", str(REPO_ROOT / "autograder"))
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    other = PrivateKernelManager(kernel_name="ddim-grading")  # another student's kernel
    other.write_connection_file()
    (alice(course) / "ddim.ipynb").write_text("### BEGIN HIDDEN TESTS")
    manager = PrivateKernelManager(kernel_name="ddim-grading")
    probe = f"""
import os
print(os.listdir("."), os.path.exists({other.connection_file!r}),
      os.path.exists({str(other.private_folder)!r}), os.path.exists({str(course)!r} + "/solutions"))
try:
    open({manager.connection_file!r}, "a")
    print("key writable")
except OSError:
    print("key read-only")
"""

    async def run_kernel():
        await manager.start_kernel(cwd=str(alice(course)))
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            outputs = []
            await client.execute_interactive(probe, output_hook=outputs.append, timeout=30)
            client.execute("import os\nwhile True:\n    os.write(1, b'x' * 2**20)")
            for _ in range(600):
                if not await manager.is_alive():
                    break
                await asyncio.sleep(0.1)
            return "".join(m["content"]["text"] for m in outputs if m["msg_type"] == "stream")
        finally:
            client.stop_channels()
            await manager.shutdown_kernel(now=True)

    try:
        printed = asyncio.run(run_kernel())
    finally:
        other.cleanup_connection_file()
    assert printed == "[] False False False\nkey read-only\n", printed
    assert manager.sandbox_report["limit"] == "output limit 16 MiB exceeded"


# ---- limits ------------------------------------------------------------------------------


@as_root
def test_a_memory_bomb_is_stopped_and_the_limit_named(course):
    bomb = "blocks = []\nwhile True:\n    blocks.append(b'x' * 64 * 2**20)  # touched pages"
    result, report = run(alice(course), python(bomb))
    assert result.returncode != 0
    assert report["limit"] == "memory limit 2 GiB exceeded", report


@as_root
def test_a_fork_bomb_is_stopped_at_the_process_limit(course):
    bomb = """
import os, sys, time
children = 0
try:
    for _ in range(5000):
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        children += 1
except OSError:
    print(children)
    sys.exit(1)
"""
    result, report = run(alice(course), python(bomb))
    assert result.returncode == 1
    assert int(result.stdout) < RUNNER.processes
    assert report["limit"] == f"process limit {RUNNER.processes} exceeded", report


def test_a_file_size_bomb_is_stopped(course):
    result, report = run(alice(course), ["sh", "-c", "head -c 300M /dev/zero > big"])
    assert result.returncode != 0
    assert report["limit"] == "file size limit 256 MiB exceeded", report
    assert (alice(course) / "big").stat().st_size <= RUNNER.file_size_bytes


def test_a_disk_bomb_in_the_work_folder_is_stopped(course):
    # allocated blocks count as written ones, and take no time to make
    bomb = "for i in 1 2 3 4 5 6; do fallocate -l 250M part$i; done; sleep 5"
    result, report = run(alice(course), ["sh", "-c", bomb])
    assert result.returncode != 0
    assert report["limit"] == "disk limit 1 GiB exceeded", report


def test_the_private_tmp_is_size_capped(course):
    result, _ = run(alice(course), ["sh", "-c", "head -c 1100M /dev/zero > /tmp/big; echo $?; "
                                                "du -m /tmp/big"])
    status, size = result.stdout.split()[0], int(result.stdout.split()[1])
    assert status != "0" and size <= RUNNER.disk_bytes // 2**20


def test_an_output_bomb_is_stopped_and_the_limit_named(course):
    result, report = run(alice(course), ["yes"])
    assert result.returncode != 0
    assert report["limit"] == "output limit 16 MiB exceeded", report
    assert len(result.stdout) <= RUNNER.output_bytes


def test_an_honest_tensorflow_training_fits_the_limits(course):
    """Import TF, build the quick DDIM model, train a few steps: no limit may trip, not even the
    address-space rlimit that stands in for the memory cgroup where none is writable (TF maps
    about 3 GiB of virtual memory here)."""
    honest = """
import numpy as np
from autograder.assignment.solution import SolutionDiffusionModel
from diffusion_course.config import DDIMConfig
config = DDIMConfig.from_profile("quick")
model = SolutionDiffusionModel(config, seed=0)
images = np.random.default_rng(0).random((64, config.image_size, config.image_size, 3))
model.adapt_normalizer(images.astype("float32"))
model.compile()
model.fit(images.astype("float32"), batch_size=config.batch_size, epochs=1, verbose=0)
print("trained")
"""
    # the reference stands in for an honest student's functions (trusted code, allowed here)
    result, report = run(alice(course), python(honest), "--allow", str(REPO_ROOT / "autograder"),
                         "--allow", str(REPO_ROOT / "solutions"), timeout=300,
                         prefix=["prlimit", f"--as={RUNNER.address_space_bytes}", "--"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "trained" in result.stdout
    assert report["limit"] is None
    if report["peak_memory_bytes"] is not None:
        print(f"peak memory {report['peak_memory_bytes'] / 2**20:.0f} MiB")
        assert report["peak_memory_bytes"] < 0.75 * RUNNER.memory_bytes
