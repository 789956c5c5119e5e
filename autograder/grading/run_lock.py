"""One grading run per course folder: a lock that says who holds it.

    with course_lock(out):     # raises LockedError("... held by pid 123 on host since ...")
        ...

The lock is an flock on <out>/.lock, so the kernel releases it when the holder dies, however it
dies; the file's text (pid, host, start time) is only there to name the holder.

Why not the `filelock` package: it would take the flock but not name the holder, so the holder
text would stay ours, and filelock 3.x opens the lock file with O_TRUNC, so a second run's
attempt erases the record it should report (checked: 3.20.0's _unix.py; 4.3.2 no longer
truncates). Twenty lines and no dependency are the smaller choice. diffusion_course/cli/
run_folder.py holds training folders the same way.
"""

import datetime
import fcntl
import os
import socket
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".lock"


class LockedError(Exception):
    """Another grading run holds the course folder."""


@contextmanager
def course_lock(out):
    path = Path(out) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 1000, 0).decode(errors="replace").strip()
            raise LockedError(f"{out} is being graded by another run ({holder or 'unknown'}); "
                              "wait for it to finish, or choose another --out.") from None
        started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        holder = f"pid {os.getpid()} on {socket.gethostname()}, started {started}"
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, holder.encode(), 0)
        yield holder
    finally:
        os.close(descriptor)  # closing releases the flock
