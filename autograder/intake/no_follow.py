"""Reading files that student code could have written, or replaced by a link or a FIFO.

Trusted code reads a result, a record, a graded notebook or a sandbox report only through
`open_no_follow`: never through a symbolic link (O_NOFOLLOW), never blocking on a FIFO
(O_NONBLOCK), and only a regular file (checked on the open descriptor, so the entry cannot be
swapped after the check). `read_no_follow` adds a size cap.
"""

import errno
import json
import os
import stat

MAX_READ_BYTES = 50 * 2**20


class NotRegularFileError(OSError):
    """The path is a FIFO, socket, device or folder: trusted code reads only regular files."""


def open_no_follow(path):
    """The regular file `path`, open for reading in binary; OSError otherwise (errno ELOOP for
    a link, NotRegularFileError for a FIFO, socket, device or folder), at once."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise NotRegularFileError(errno.EINVAL, "not a regular file (a FIFO, socket, device or "
                                                "folder)", os.fspath(path))
    return os.fdopen(descriptor, "rb")


def read_no_follow(path, limit=MAX_READ_BYTES):
    """The text of a file in a folder that student code could have written to: never through
    a link, at most `limit` bytes; None when it is missing, a link, not a regular file or too
    large."""
    try:
        file = open_no_follow(path)
    except OSError:
        return None
    with file:
        data = file.read(limit + 1)
    return None if len(data) > limit else data.decode("utf-8", errors="replace")


def read_json_no_follow(path):
    text = read_no_follow(path)
    try:
        return None if text is None else json.loads(text)
    except ValueError:
        return None
