"""Checks a folder of submissions and copies each student's notebooks into the course folder.

The submissions folder holds one subfolder per student. Everything in it was made by students,
so this trusted code never follows a link they could have made:
- a student folder must be a real folder, not a symbolic link;
- only regular `.ipynb` files with one name (no hard link) are copied in, as new regular files,
  read through a descriptor opened with O_NOFOLLOW and O_NONBLOCK (a FIFO cannot stall us),
  checked on that descriptor (the entry cannot be swapped between check and read);
- a symbolic link, hard link, FIFO or device file is refused, with the reason in the report;
- a student name that nbgrader cannot take (a control character such as a newline, a glob
  character) is refused up front with the reason, and the student still appears in every output.
"""

import errno
import os
import stat
from pathlib import Path

from autograder.intake.no_follow import NotRegularFileError, open_no_follow

ASSIGNMENT = "ddim"
NOTEBOOK = "ddim.ipynb"
MAX_NOTEBOOK_BYTES = 50 * 2**20  # a notebook without outputs is well under 1 MiB
# nbgrader globs and regex-matches its path pattern {student}/{assignment}: these break it
GLOB_CHARACTERS = "*?[]"


class SubmissionsError(Exception):
    """The submissions folder cannot be graded at all (its message says what to change)."""


def student_folders(submissions):
    """The student folder names in `submissions`, sorted; a clear error when there are none."""
    submissions = Path(submissions)
    if not submissions.exists():
        raise SubmissionsError(f"--submissions {submissions} does not exist: give the folder "
                               "that holds one subfolder per student.")
    if submissions.is_symlink() or not submissions.is_dir():
        raise SubmissionsError(f"--submissions {submissions} is not a folder: give the folder "
                               "that holds one subfolder per student.")
    names = sorted(entry.name for entry in os.scandir(submissions)
                   if entry.is_dir(follow_symlinks=False) or entry.is_symlink())
    if not names:
        raise SubmissionsError(f"0 submissions: {submissions} has no student subfolders "
                               f"(expected <student>/{NOTEBOOK} inside it).")
    return names


def name_problem(name):
    """Why nbgrader cannot grade a student of this folder name, or None."""
    if any(ord(character) < 32 or ord(character) == 127 for character in name):
        return (f"the folder name {name!r} contains a control character (a newline?), which "
                "nbgrader's paths cannot hold: rename the folder")
    if any(character in name for character in GLOB_CHARACTERS):
        return (f"the folder name {name!r} contains one of {GLOB_CHARACTERS}, which nbgrader "
                "reads as a file pattern: rename the folder")
    return None


def _refusal(path, info):
    """Why a directory entry may not be copied in, or None for a plain regular file."""
    if stat.S_ISLNK(info.st_mode):
        return f"{path.name} is a symbolic link (submit the file itself)"
    if not stat.S_ISREG(info.st_mode):
        return f"{path.name} is not a regular file (a FIFO, socket or device)"
    if info.st_nlink != 1:
        return f"{path.name} is a hard link ({info.st_nlink} names for one file)"
    if info.st_size > MAX_NOTEBOOK_BYTES:
        return f"{path.name} is {info.st_size} bytes, over the {MAX_NOTEBOOK_BYTES} byte limit"
    return None


def _copy_regular_file(source, target):
    """Copies `source` without following a link; returns the refusal reason, or None."""
    try:
        file = open_no_follow(source)
    except NotRegularFileError:
        return _refusal(source, os.lstat(source)) or f"{source.name} is not a regular file"
    except OSError as error:
        if error.errno == errno.ELOOP:  # O_NOFOLLOW met a link
            return f"{source.name} is a symbolic link (submit the file itself)"
        return f"{source.name} cannot be read ({error.strerror})"
    with file:
        # checked on the open descriptor: the entry cannot be swapped after the check
        refusal = _refusal(source, os.fstat(file.fileno()))
        if refusal is None:
            target.write_bytes(file.read(MAX_NOTEBOOK_BYTES + 1))
    return refusal


def collect_student(submissions, name, course_root):
    """Copies one student's notebooks to submitted/<name>/ddim/; returns [refusal reasons]."""
    folder = Path(submissions) / name
    if folder.is_symlink() or not folder.is_dir():
        return [f"the student folder {name!r} is a symbolic link, not a folder"]
    target = Path(course_root) / "submitted" / name / ASSIGNMENT
    target.mkdir(parents=True, exist_ok=True)
    refusals = []
    for entry in sorted(os.scandir(folder), key=lambda entry: entry.name):
        path = Path(entry.path)
        if not entry.name.endswith(".ipynb"):
            # only notebooks are graded (nbgrader_config.py: CourseDirectory.include); a link
            # or special file beside them is still named in the report
            info = entry.stat(follow_symlinks=False)
            refusal = None if stat.S_ISDIR(info.st_mode) else _refusal(path, info)
            if refusal is not None and "byte limit" not in refusal:
                refusals.append(f"{refusal}; not collected")
            continue
        refusal = _copy_regular_file(path, target / entry.name)
        if refusal is not None:
            refusals.append(refusal)
    return refusals


def submission_problem(refusals, course_root, name):
    """The reason the whole submission fails before grading, or None when it can be graded."""
    if not (Path(course_root) / "submitted" / name / ASSIGNMENT / NOTEBOOK).exists():
        notebook_refusals = [reason for reason in refusals if reason.startswith(NOTEBOOK)]
        if notebook_refusals:
            return f"refused: {notebook_refusals[0]}"
        if refusals and refusals[0].startswith("the student folder"):
            return f"refused: {refusals[0]}"
        found = ", ".join(path.name for path in (Path(course_root) / "submitted" / name
                                                 / ASSIGNMENT).glob("*.ipynb")) or "no notebook"
        return f"no {NOTEBOOK} in the submission (found: {found}); was the file renamed?"
    return None
