"""A training run's folder: checked before anything is trained, and held by one run at a time.

`held_run_folder(out)` is a context manager. Before it lets a run start it checks that `out` is
a folder (or can become one) that this process can write, and that `out/last` and `out/best`
are not symbolic links (a save replaces them). Then it locks `out/.lock` with an operating-system
lock, which the system releases when the process ends, however it ends: a killed run never
leaves a stale lock. The lock file names its holder, so a second run on the same folder says who
holds it instead of deleting the first run's files as it saves. (Why not the `filelock`
package: autograder/grading/run_lock.py says.)
"""

import contextlib
import datetime
import os
import socket
import sys
from pathlib import Path

from diffusion_course.cli.common import CommandError, UsageError

LOCK_NAME = ".lock"
CHECKPOINT_NAMES = ("last", "best")

if os.name == "nt":
    import msvcrt

    def _try_lock(file):
        msvcrt.locking(file.fileno(), msvcrt.LK_NBLCK, 1)
else:
    import fcntl

    def _try_lock(file):
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


@contextlib.contextmanager
def held_run_folder(out):
    """Checks and locks the run folder `out` for the duration of the `with` block."""
    out = Path(out)
    check_run_folder(out)
    created = [folder for folder in (out, *out.parents) if not folder.exists()]
    lock_path = out / LOCK_NAME
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock_file = open(lock_path, "a+", encoding="utf-8", errors="backslashreplace")
    except OSError as error:
        raise CommandError(f"Cannot write to the run folder {out}: {error.strerror}. Choose an "
                           "--out folder that you can write to (is the disk read-only?).") from None
    try:
        try:
            _try_lock(lock_file)
        except OSError:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "another process"
            raise CommandError(
                f"{out} is in use by another training run ({holder}). Two runs on one folder "
                "would overwrite each other's checkpoints: wait for it to finish (or stop it), "
                "or choose another --out.") from None
        lock_file.seek(0)
        lock_file.truncate()
        started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        lock_file.write(f"process {os.getpid()} on {socket.gethostname()}, started {started}: "
                        f"{' '.join(sys.argv)}\n")
        lock_file.flush()
        try:
            yield out
        finally:
            if created and os.listdir(out) == [LOCK_NAME]:  # nothing was trained: leave no trace
                os.remove(lock_path)
                with contextlib.suppress(OSError):  # a folder someone else filled meanwhile
                    for folder in created:  # the deepest first
                        os.rmdir(folder)
    finally:
        lock_file.close()


def check_run_folder(out):
    """Fails, before any data is loaded, on an --out that no run could be saved to."""
    blocking = next((folder for folder in (out, *out.parents) if folder.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise UsageError(f"--out {out}: {blocking} is a file, but a run needs a folder. Choose "
                         "another --out.")
    for name in CHECKPOINT_NAMES:
        if (out / name).is_symlink():
            raise CommandError(
                f"{out / name} is a symbolic link (to {os.readlink(out / name)}). A save "
                "replaces that folder, so it must be a real folder inside the run: replace the "
                "link with the folder it points to, or choose another --out.")
