"""The instructors' side of the course's exchange, run by the formgrader and the command line.

- `OwnedCollect` collects, for each student, their newest submission folder that they own and
  that is within the size limit. nbgrader's own collect only warns when `bob+ddim+...` belongs
  to alice, so one student could hand in work in another's name.
- `PrivateReleaseFeedback` gives each released feedback file to its student (mode 0600): the
  feedback folder can be traversed, not listed, and no student reads another's file even by
  name.
"""

import glob
import os
import pwd
import shutil

from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.exchange.default.release_feedback import ExchangeReleaseFeedback
from nbgrader.utils import notebook_hash

from autograder.hub.student_exchange import MAX_SUBMISSION_BYTES, folder_bytes

SUBMISSION_FILES = ("timestamp.txt", "submission_secret.txt")  # nbgrader's, beside a submission


def owner(path):
    try:
        return pwd.getpwuid(os.lstat(path).st_uid).pw_name
    except KeyError:
        return None


class OwnedCollect(ExchangeCollect):
    """nbgrader's collect, taking only folders that their student owns and that fit the limit."""

    def acceptable(self, record):
        path = os.path.join(self.inbound_path, record["filename"])
        if owner(path) != record["username"] or os.path.islink(path):
            self.log.warning("Skipped %s: it is not owned by %s", path, record["username"])
            return False
        if folder_bytes(path) > MAX_SUBMISSION_BYTES:
            self.log.warning("Skipped %s: over the %d MB limit", path, MAX_SUBMISSION_BYTES >> 20)
            return False
        return True

    def init_src(self):
        super().init_src()
        chosen = []
        for record in self.src_records:
            if self.acceptable(record):
                chosen.append(record)
                continue
            pattern = os.path.join(self.inbound_path,
                                   f"{record['username']}+{self.coursedir.assignment_id}+*")
            others = self._sort_by_timestamp([self._path_to_record(path)
                                              for path in glob.glob(pattern)])
            chosen.extend([other for other in others if self.acceptable(other)][:1])
        self.src_records = chosen

    def copy_files(self):
        """nbgrader's copy, then the submission's timestamp and secret, which the kit's
        CourseDirectory.include (notebooks only) leaves behind: autograde reads the timestamp
        to mark a late submission, and the feedback is released by the secret."""
        super().copy_files()
        for record in self.src_records:
            submitted = self.coursedir.format_path(self.coursedir.submitted_directory,
                                                   record["username"],
                                                   self.coursedir.assignment_id)
            for name in SUBMISSION_FILES:
                source = os.path.join(self.inbound_path, record["filename"], name)
                if os.path.isfile(source) and os.path.isdir(submitted):
                    shutil.copyfile(source, os.path.join(submitted, name))


class PrivateReleaseFeedback(ExchangeReleaseFeedback):
    """nbgrader's release of feedback; then each file belongs to its student alone."""

    def restore_submission_files(self):
        """The feedback folders lack the submission's timestamp and secret (the kit's course
        takes only notebooks) that nbgrader releases them by: copied from the submission."""
        for folder in glob.glob(self.src_path):
            student = os.path.basename(os.path.dirname(folder))
            submitted = self.coursedir.format_path(self.coursedir.submitted_directory, student,
                                                   self.coursedir.assignment_id)
            for name in SUBMISSION_FILES:
                source = os.path.join(submitted, name)
                if os.path.isfile(source) and not os.path.exists(os.path.join(folder, name)):
                    shutil.copyfile(source, os.path.join(folder, name))

    def copy_files(self):
        self.restore_submission_files()
        super().copy_files()
        for html_file in glob.glob(os.path.join(self.src_path, "*.html")):
            folder = os.path.dirname(html_file)
            student = os.path.basename(os.path.dirname(folder))
            with open(os.path.join(folder, "submission_secret.txt")) as file:
                secret = file.read()
            notebook_id = os.path.splitext(os.path.basename(html_file))[0]
            released = os.path.join(self.dest_path,
                                    f"{notebook_hash(secret=secret, notebook_id=notebook_id)}.html")
            if not os.path.exists(released):
                continue  # an excluded student
            try:
                account = pwd.getpwnam(student)
            except KeyError:
                os.remove(released)  # nobody may read it
                self.log.warning("No Unix account %s: feedback not released", student)
                continue
            os.chown(released, account.pw_uid, account.pw_gid)
            os.chmod(released, 0o600)
