"""Trusted readers of files that student code could have written: a FIFO planted in their way
is refused at once (a reader that blocked on it would stall the whole grading run), and a link
is never followed."""

import errno
import os
import threading

import pytest

from autograder import sandbox
from autograder.errors import GraderError
from autograder.grader_state.cache import MetricsCache
from autograder.intake import collect, scanner
from autograder.intake.no_follow import (
    NotRegularFileError,
    open_no_follow,
    read_json_no_follow,
    read_no_follow,
)

PROMPTLY_S = 10  # a read that blocks on the FIFO never returns: any bound shows it


def finishes_promptly(read):
    """What `read()` returned or raised, run in a thread that must end within PROMPTLY_S."""
    outcome = {}

    def run():
        try:
            outcome["returned"] = read()
        except BaseException as error:  # noqa: BLE001 (handed to the test)
            outcome["raised"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(PROMPTLY_S)
    return not thread.is_alive(), outcome


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "planted.json"
    os.mkfifo(path)
    yield path
    # a reader still blocked on it (a regression) is released, so the test fails, not hangs
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass  # no reader was waiting


def cache_entry(fifo, tmp_path):
    cache = MetricsCache(tmp_path / "cache")
    description = {"kind": "training", "seed": 1}
    os.replace(fifo, cache._path(description))
    return lambda: cache.get(description)


READERS = {
    "open_no_follow": lambda path, tmp_path: lambda: open_no_follow(path),
    "read_no_follow": lambda path, tmp_path: lambda: read_no_follow(path),
    "read_json_no_follow": lambda path, tmp_path: lambda: read_json_no_follow(path),
    "scanner": lambda path, tmp_path: lambda: scanner._read(path, 2**20),
    "collect": lambda path, tmp_path: lambda: collect._copy_regular_file(path,
                                                                         tmp_path / "copy"),
    "sandbox report": lambda path, tmp_path: lambda: sandbox.read_report(path),
    "grader cache": cache_entry,
}
# what each says instead of reading: a value, or the exception it raises
REFUSALS = {
    "open_no_follow": NotRegularFileError,
    "read_no_follow": None,
    "read_json_no_follow": None,
    "scanner": (None, "is not a regular file"),
    "collect": "planted.json is not a regular file (a FIFO, socket or device)",
    "sandbox report": NotRegularFileError,
    "grader cache": GraderError,
}


@pytest.mark.parametrize("reader", READERS)
def test_a_planted_fifo_is_refused_at_once(reader, fifo, tmp_path):
    finished, outcome = finishes_promptly(READERS[reader](fifo, tmp_path))
    assert finished, f"{reader} blocked on a FIFO for {PROMPTLY_S} s"
    expected = REFUSALS[reader]
    if isinstance(expected, type):
        assert isinstance(outcome.get("raised"), expected), outcome
    else:
        assert outcome == {"returned": expected}


def test_a_link_is_never_followed_and_a_regular_file_is_read(tmp_path):
    target = tmp_path / "target.json"
    target.write_text('{"score": 1}')
    link = tmp_path / "link.json"
    link.symlink_to(target)
    with pytest.raises(OSError) as error:
        open_no_follow(link)
    assert error.value.errno == errno.ELOOP
    assert read_json_no_follow(link) is None
    assert read_json_no_follow(target) == {"score": 1}
    assert read_no_follow(target, limit=5) is None  # over the cap
