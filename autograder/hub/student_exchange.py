"""The students' side of the course's exchange: a submission only its owner (and the graders)
can read, and no larger than the course allows.

nbgrader's own submit leaves each submission folder world-readable (mode 0777), hidden only by
a random name. This one closes it to its owner (0700) and refuses a submission over
MAX_SUBMISSION_BYTES with a message the student sees. It runs in the students' servers, so it
imports only nbgrader: the hub copies this file into their Python as `student_exchange`.
"""

import os

from nbgrader.exchange.default.submit import ExchangeSubmit

MAX_SUBMISSION_BYTES = 50 * 2**20


def folder_bytes(folder):
    """The bytes of the regular files under `folder` (links not followed)."""
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                total += os.path.getsize(path)
    return total


class PrivateSubmit(ExchangeSubmit):
    """nbgrader's submit, refusing an oversized folder, and private to its owner."""

    def copy_files(self):
        size = folder_bytes(self.src_path)
        if size > MAX_SUBMISSION_BYTES:
            self.fail(f"Not submitted: the folder {self.src_path} holds {size / 2**20:.1f} MB, "
                      f"over the course's limit of {MAX_SUBMISSION_BYTES // 2**20} MB. Remove "
                      "large files (data, checkpoints, images) from it and submit again.")
        super().copy_files()
        os.chmod(os.path.join(self.inbound_path, self.assignment_filename), 0o700)
