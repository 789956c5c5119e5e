"""Reading files that student code could have written, or replaced by a link.

Trusted code reads a result, a record or a graded notebook only through these: never through a
symbolic link (O_NOFOLLOW), never blocking on a FIFO (O_NONBLOCK), never more than a size cap.
"""

import json
import os

MAX_READ_BYTES = 50 * 2**20


def read_no_follow(path, limit=MAX_READ_BYTES):
    """The text of a file in a folder that student code could have written to: never through
    a link, at most `limit` bytes; None when it is missing, a link or too large."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as file:
        data = file.read(limit + 1)
    return None if len(data) > limit else data.decode("utf-8", errors="replace")


def read_json_no_follow(path):
    text = read_no_follow(path)
    try:
        return None if text is None else json.loads(text)
    except ValueError:
        return None
