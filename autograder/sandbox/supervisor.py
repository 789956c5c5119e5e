"""The trusted wrapper: sets one sandbox up, runs the command in it, enforces the limits that
need watching (wall time, output, the writable folders' size) and writes the report.

It runs as the grader, outside the sandbox. Student code never sees its pipes or its report.
"""

import fcntl
import json
import os
import resource
import selectors
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from autograder.limits import LIMITS, SANDBOX_SLOTS, SANDBOX_UID_BASE
from autograder.sandbox import (
    SETUP_FAILED,
    SandboxUnavailableError,
    mode,
    plan,
    protection,
    seccomp,
)
from autograder.sandbox.cgroups import Cgroup, CgroupError

SLOT_LOCKS = Path("/run/autograder-sandbox")
DISK_CHECK_INTERVAL_S = 0.5
MAX_WRITABLE_ENTRIES = 100_000
CONNECTION_FILE_MAX_BYTES = 16 * 1024  # fits a pipe's buffer, for bwrap to read
# after bwrap and setpriv have done their part, and before the command runs: tells setup
# failures (125, the grader's fault) from the command's own exit status
TRAMPOLINE = ('command -v -- "$0" >/dev/null || exit 127; printf R >&{fd}; '
              'exec {fd}>&-; exec "$0" "$@"')


class SetupError(Exception):
    """The sandbox could not be set up: a grader fault, exit status 125."""


class _Slot:
    """A uid/gid that no other running sandbox has (an flock held while this one runs)."""

    def __init__(self):
        _private_folder(SLOT_LOCKS)
        for index in range(SANDBOX_SLOTS):
            lock = open(SLOT_LOCKS / f"slot-{index}.lock", "a")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            self.lock, self.uid = lock, SANDBOX_UID_BASE + index
            if self.uid == 0 or self.uid in _instructor_uids():
                raise SetupError(f"the sandbox uid {self.uid} is root or the instructor's; "
                                 "set AUTOGRADER_SANDBOX_UID to an unused uid range")
            return
        raise SetupError(f"all {SANDBOX_SLOTS} sandbox uids are in use")

    def release(self):
        self.lock.close()


def _instructor_uids():
    return {os.getuid(), os.stat(plan.REPO_ROOT).st_uid, os.stat(Path.home()).st_uid}


def _private_folder(path):
    path.mkdir(mode=0o700, exist_ok=True)
    status = os.lstat(path)
    if status.st_uid != os.geteuid() or status.st_mode & 0o077 or not path.is_dir():
        raise SetupError(f"{path} must be a folder of the grader's own, mode 0700")


def _kernel_files(connection_file):
    """(the kernel's IPC folder, the connection file's content). The folder is fresh, private
    and the kernel's only writable place besides its cwd; the file, which holds the key, is
    shown as a read-only copy (PrivateKernelManager makes this layout)."""
    path = Path(connection_file).absolute()
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(descriptor, "rb") as file:
            content = file.read(CONNECTION_FILE_MAX_BYTES + 1)
        if len(content) > CONNECTION_FILE_MAX_BYTES:
            raise ValueError(f"larger than {CONNECTION_FILE_MAX_BYTES} bytes")
        connection = json.loads(content)
    except (OSError, ValueError) as error:
        raise SetupError(f"cannot read the kernel connection file {path}: {error}") from None
    if connection.get("transport") != "ipc":
        raise SetupError("the kernel must talk over IPC sockets (transport 'ipc'), not "
                         f"{connection.get('transport')!r}: the sandbox has no network")
    folder = Path(connection.get("ip", "")).parent
    if not folder.is_absolute():
        raise SetupError(f"the kernel's IPC sockets need an absolute path, not {folder}")
    _private_folder(folder)
    if os.listdir(folder):
        raise SetupError(f"the kernel's IPC folder {folder} is not fresh and empty; use "
                         "autograder.sandbox.kernel.PrivateKernelManager")
    return folder, content


def _writable_size(folders):
    """Bytes used under the writable folders, and whether they hold too many entries."""
    total, count, pending = 0, 0, list(folders)
    while pending and count <= MAX_WRITABLE_ENTRIES:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    count += 1
                    status = entry.stat(follow_symlinks=False)
                    total += status.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
        except OSError:
            continue
    return total, count > MAX_WRITABLE_ENTRIES


class Supervisor:
    def __init__(self, command, allow, write, mask, limits_name, private_cwd, kernel_connection,
                 report_path=None):
        self.command = command
        self.report_path = report_path
        self.limits = LIMITS[limits_name]
        self.allow = [Path(path).absolute() for path in allow]
        self.write = [Path(path).absolute() for path in write]
        self.mask = [Path(path).absolute() for path in mask]
        self.private_cwd = private_cwd
        self.kernel_connection = kernel_connection
        self.report = {"setup_error": None, "limit": None, "returncode": None, "signal": None,
                       "wall_s": 0.0, "mode": mode(), "peak_memory_bytes": None}
        self.slot = self.cgroup = None
        self.bwrap_fds = []  # what bwrap reads: the seccomp filter, copies of files
        self.watched = []  # the writable folders on the host

    # ---- set-up ------------------------------------------------------------------------------

    def _argv(self, protection, ready_fd):
        cwd = Path.cwd()
        visible = self.write + self.allow
        if not self.private_cwd and not any(cwd == p or p in cwd.parents for p in visible):
            raise SetupError(f"the cwd {cwd} is not inside a --write or --allow path; pass it "
                             "with --write, or use --private-cwd")
        write, copies = list(self.write), {}
        if self.kernel_connection is not None:
            ipc_folder, content = _kernel_files(self.kernel_connection)
            copies[Path(self.kernel_connection).absolute()] = content
            write.append(ipc_folder)
        self.watched = write  # on the host's disk: their size counts against the disk limit
        for path in [*self.allow, *write, *self.mask]:
            if not path.exists():
                raise SetupError(f"{path} does not exist")
        if protection == "root":
            for folder in write:
                _share_with(folder, self.slot.uid)
        layout = plan.build(self.allow, write, self.mask, self.private_cwd,
                            self.limits.disk_bytes, self._data_fd, copies)
        argv = ["bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                "--unshare-cgroup-try", "--hostname", "sandbox", "--die-with-parent",
                "--new-session", *layout.bwrap_arguments(), *plan.environment(),
                "--chdir", str(cwd)]
        if seccomp.supported():
            argv += ["--seccomp", str(self._data_fd(seccomp.program()))]
        trampoline = ["sh", "-c", TRAMPOLINE.replace("{fd}", str(ready_fd)), *self.command]
        if protection == "userns":
            return [*argv, "--unshare-user", "--disable-userns", "--", *trampoline]
        uid = str(self.slot.uid)
        return [*argv, "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add",
                "CAP_SETPCAP", "--", "setpriv", "--reuid", uid, "--regid", uid,
                "--clear-groups", "--no-new-privs", "--bounding-set", "-all", "--inh-caps",
                "-all", "--", *trampoline]

    def _data_fd(self, content):
        """A descriptor that bwrap reads `content` from (a pipe holds up to 64 KiB)."""
        read_end, write_end = os.pipe()
        os.write(write_end, content)
        os.close(write_end)
        self.bwrap_fds.append(read_end)
        return read_end

    def _prepare_child(self):
        """Runs in the child before exec: the cgroup, the rlimits, a session of its own."""
        os.setsid()
        limits = self.limits
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_bytes,) * 2)
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
        if self.cgroup is not None:
            self.cgroup.enter()
        else:
            resource.setrlimit(resource.RLIMIT_AS, (limits.address_space_bytes,) * 2)
        if self.slot is not None:  # per-slot uid: counts this sandbox's processes only
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes,) * 2)

    # ---- running -----------------------------------------------------------------------------

    def run(self):
        started = time.monotonic()
        try:
            returncode = self._run()
        except SetupError as error:
            self.report["setup_error"] = str(error)
            returncode = SETUP_FAILED
        finally:
            if self.cgroup is not None:
                self.report["peak_memory_bytes"] = self.cgroup.peak_memory_bytes()
                self.cgroup.remove()
            if self.slot is not None:
                self.slot.release()
        self.report["returncode"] = returncode
        self.report["wall_s"] = round(time.monotonic() - started, 3)
        return returncode

    def _run(self):
        if self.report_path is not None:
            folder = Path(self.report_path).absolute().parent.resolve()
            if any(folder == path.resolve() or path.resolve() in folder.parents
                   for path in self.write):
                raise SetupError("the --report file must be outside the --write folders, where "
                                 "student code could put a link in its way")
        if self.report["mode"] == "off":
            return self._supervise(self.command, (), setup_fd=None)
        try:
            how = protection() if os.geteuid() != 0 else "root"
        except SandboxUnavailableError as error:
            raise SetupError(str(error)) from None
        if how == "root":
            self.slot = _Slot()
            try:
                self.cgroup = Cgroup.create(f"autograder-sandbox-{self.slot.uid}", self.limits)
            except CgroupError as error:
                raise SetupError(str(error)) from None
        ready_read, ready_write = os.pipe()
        try:
            argv = self._argv(how, ready_write)
            return self._supervise(argv, (ready_write, *self.bwrap_fds), setup_fd=ready_read)
        finally:
            for descriptor in (ready_read, *self.bwrap_fds):
                os.close(descriptor)

    def _supervise(self, argv, pass_fds, setup_fd):
        """Runs argv; pass_fds[0], the ready pipe's write end, is closed here once passed."""
        try:
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       pass_fds=pass_fds, preexec_fn=self._prepare_child)
        except OSError as error:
            raise SetupError(f"cannot start {argv[0]}: {error}") from None
        finally:
            if pass_fds:
                os.close(pass_fds[0])
        selector = selectors.DefaultSelector()
        outputs = {process.stdout.fileno(): 1, process.stderr.fileno(): 2}
        for source in [*outputs, *([] if setup_fd is None else [setup_fd])]:
            selector.register(source, selectors.EVENT_READ)
        forward = lambda number, _: process.send_signal(number)  # noqa: E731
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(number, forward)
        ready, setup_messages, written = setup_fd is None, bytearray(), 0
        parent = os.getppid()  # if it dies (Ctrl-C, kill -9 of nbgrader), so does the sandbox
        deadline = time.monotonic() + self.limits.wall_seconds
        next_disk_check = time.monotonic()
        open_outputs = set(outputs)
        while open_outputs:
            now = time.monotonic()
            if now >= deadline:
                self._stop(process, "wall time")
                break
            if os.getppid() != parent:
                self._stop(process, limit=None)
                break
            if now >= next_disk_check and self.watched:
                size, too_many = _writable_size(self.watched)
                if too_many or size > self.limits.disk_bytes:
                    self._stop(process, "disk")
                    break
                next_disk_check = now + DISK_CHECK_INTERVAL_S
            events = selector.select(timeout=min(DISK_CHECK_INTERVAL_S, deadline - now))
            # the ready byte is written before the command starts: read it before any output
            for key, _ in sorted(events, key=lambda event: event[0].fd != setup_fd):
                chunk = os.read(key.fd, 65536)
                if key.fd == setup_fd or not chunk:
                    ready = ready or (key.fd == setup_fd and chunk == b"R")
                    selector.unregister(key.fd)
                    open_outputs.discard(key.fd)
                elif not ready:
                    setup_messages += chunk[:65536 - len(setup_messages)]  # bwrap's complaint
                elif written + len(chunk) > self.limits.output_bytes:
                    self._stop(process, "output")
                    open_outputs.clear()
                    break
                else:
                    written += len(chunk)
                    _write_all(outputs[key.fd], chunk)
        selector.close()
        returncode = process.wait()
        process.stdout.close()
        process.stderr.close()
        if not ready:
            message = setup_messages.decode(errors="replace").strip()
            raise SetupError(f"the sandbox did not start: {message or f'exit {returncode}'}")
        return self._outcome(returncode)

    def _stop(self, process, limit):
        if limit is not None:
            self.report["limit"] = self.limits.describe(limit) + " exceeded"
        try:
            os.killpg(process.pid, signal.SIGKILL)  # bwrap; its PID namespace dies with it
        except ProcessLookupError:
            pass

    def _outcome(self, returncode):
        """The exit status to pass on, with the signal and the limit that explain it."""
        number = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
        if number:
            self.report["signal"] = number
        if self.report["limit"] is None and returncode != 0:
            hit = self.cgroup.limit_hit() if self.cgroup is not None else None
            hit = hit or {signal.SIGXCPU: "CPU time", signal.SIGXFSZ: "file size"}.get(number)
            if hit:
                self.report["limit"] = self.limits.describe(hit) + " exceeded"
        return 128 + number if returncode < 0 else returncode


def _share_with(folder, gid):
    """Lets the sandbox's group create files in a --write folder, which stays the grader's. The
    sticky bit, as on /tmp, keeps what the grader put there (a request, a log) from being
    renamed, removed or replaced by a link. A link in the folder's own place is refused."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fchown(descriptor, -1, gid)
        os.fchmod(descriptor, 0o1770)
    finally:
        os.close(descriptor)


def _write_all(descriptor, data):
    try:
        while data:
            data = data[os.write(descriptor, data):]
    except OSError:
        pass  # the reader went away; the command still runs to its end


def write_report(report, path):
    """Writes the report atomically, never through a link (the folder is the caller's)."""
    path = Path(path).absolute()
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".sandbox-report-")
    with os.fdopen(descriptor, "w") as file:
        json.dump(report, file)
    os.replace(temporary, path)
