"""Which students wrote resembling code: the comparisons behind the similarity report.

Advice for a person, never a grade. What is compared is the code each student wrote: the answer
cells and their own code cells (`submission.written_cells`), without any line that the release
gives everyone (the function headers, the docstrings, `# YOUR CODE HERE`, the locked cells).

The fingerprints are copydetect's, MOSS's method ("Winnowing: local algorithms for document
fingerprinting", Schleimer, Wilkerson and Aiken, SIGMOD 2003): pygments splits the code into
tokens, every name becomes `V` (a function's `F`) and comments and spaces are dropped, so renamed
variables and added comments do not hide a copy; every k characters of what is left are hashed,
and winnowing keeps the smallest hash of each window. A pair's similarity is the larger of the
two shares: of one student's fingerprinted code, the part found in the other's.
"""

import io
import os
import stat
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from copydetect import CodeFingerprint, compare_files
from traitlets import Float, Int
from traitlets.config import Configurable

from autograder.intake.collect import NOTEBOOK
from autograder.intake.no_follow import read_no_follow
from autograder.intake.notebook_reader import (
    UnreadableSubmission,
    cell_source,
    read_notebook_text,
    written_cells,
)

# nbgrader's markers around a solution: the release replaces what they hold with its stub
SOLUTION_MARKERS = {"### BEGIN SOLUTION", "### END SOLUTION"}


class SimilarityReport(Configurable):
    """The thresholds of the similarity report; set them in nbgrader_config.py."""

    pair_threshold = Float(0.5, help=(
        "A pair of students is listed when this share of one's code is found in the other's "
        "(0-1). Measured on the bundled samples: honest independent solutions 0.00-0.24, "
        "copies (verbatim, renamed, commented) 1.00.")).tag(config=True)
    solution_threshold = Float(0.8, help=(
        "A student is listed as matching the instructor's solution from this share (0-1): "
        "flagged for a person to look, never penalised.")).tag(config=True)
    noise_threshold = Int(25, help=(
        "k: matches shorter than this many characters of normalised tokens are ignored "
        "(copydetect's default).")).tag(config=True)
    guarantee_threshold = Int(25, help=(
        "Matches at least this long are always found (>= noise_threshold; copydetect's "
        "default; the winnowing window is their difference + 1). Equal, every k-gram is kept; "
        "above, the kept ones follow Python's per-process string hashes and the shares may "
        "vary a little from run to run.")).tag(config=True)


@dataclass
class Match:
    """Two codes that resemble each other: each one's share found in the other, and where."""

    first: str
    second: str
    first_share: float
    second_share: float
    first_slices: object  # copydetect's 2 x N array of [start, end) offsets into the code
    second_slices: object

    @property
    def similarity(self):
        return max(self.first_share, self.second_share)


def release_lines(release_notebook):
    """Every line that the release's code cells give each student (stripped), and the solution
    markers: none of them is a student's own writing."""
    notebook = read_notebook_text(Path(release_notebook).read_text(encoding="utf-8"))
    lines = {line.strip() for cell in notebook["cells"] if cell.get("cell_type") == "code"
             for line in cell_source(cell).splitlines()}
    return (lines | SOLUTION_MARKERS) - {""}


def written_code(notebook, given_lines):
    """The code a student wrote, one cell after another under a `# <cell>` line, without the
    lines of `given_lines`; "" when they wrote nothing."""
    parts = []
    for label, source in written_cells(notebook):
        own = [line.rstrip("\r") for line in source.splitlines()
               if line.strip() not in given_lines]
        if any(line.strip() for line in own):
            parts.append(f"# {label}\n" + "\n".join(own).strip("\n") + "\n")
    return "\n".join(parts)


def read_written_code(path, given_lines):
    """(code, None) of a notebook file, or (None, why it cannot be compared)."""
    text = read_no_follow(path)
    if text is None:
        return None, f"{NOTEBOOK} is missing, a link or too large"
    try:
        return written_code(read_notebook_text(text), given_lines), None
    except UnreadableSubmission as error:
        return None, str(error)


def fingerprint(code, settings):
    return CodeFingerprint(NOTEBOOK, settings.noise_threshold,
                           settings.guarantee_threshold - settings.noise_threshold + 1,
                           fp=io.StringIO(code), language="python")


def compare(first, second, first_fingerprint, second_fingerprint):
    """The Match of two fingerprinted codes (shares 0 when nothing matches)."""
    _, (first_share, second_share), (first_slices, second_slices) = compare_files(
        first_fingerprint, second_fingerprint)
    return Match(first, second, float(first_share), float(second_share), first_slices,
                 second_slices)


def compare_class(codes, solution_code, settings):
    """(every pair of students, every student against the solution), most similar first.

    `codes` is {student: written code}; a student who wrote nothing is compared with nobody.
    """
    fingerprints = {student: fingerprint(code, settings) for student, code in codes.items()
                    if code.strip()}
    solution = fingerprint(solution_code, settings)
    pairs = [compare(first, second, fingerprints[first], fingerprints[second])
             for first, second in combinations(sorted(fingerprints), 2)
             if fingerprints[first].hashes & fingerprints[second].hashes]
    solution_matches = [compare(student, "solution", fingerprints[student], solution)
                        for student in sorted(fingerprints)]
    return sorted(pairs, key=most_similar_first), sorted(solution_matches,
                                                          key=most_similar_first)


def most_similar_first(match):
    return -match.similarity, match.first, match.second


def shared_files(submissions):
    """[(students, what)] of the notebooks that are one file under several names, found from
    the entries themselves (never followed, never read): a symbolic link, with the student
    whose folder it points into, and a hard link, with the students that share its inode."""
    submissions = Path(submissions)
    findings, inodes = [], {}
    for entry in sorted(os.scandir(submissions), key=lambda entry: entry.name):
        path = Path(entry.path) / NOTEBOOK
        if not entry.is_dir(follow_symlinks=False):
            continue
        try:
            info = path.lstat()
        except OSError:
            continue
        if stat.S_ISLNK(info.st_mode):
            target = os.path.normpath(Path(entry.path) / os.readlink(path))
            relative = os.path.relpath(target, submissions)
            owner = relative.split(os.sep)[0]
            if relative.startswith(os.pardir):
                findings.append(((entry.name,), f"a symbolic link to {os.readlink(path)}, "
                                                "outside the class"))
            elif owner == entry.name:
                findings.append(((entry.name,), f"a symbolic link to {os.readlink(path)}, "
                                                "in its own folder"))
            else:
                findings.append(((entry.name, owner), f"{entry.name}'s {NOTEBOOK} is a "
                                                      f"symbolic link to {owner}'s"))
        elif stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
            inodes.setdefault((info.st_dev, info.st_ino), []).append((entry.name, info.st_nlink))
    for names in inodes.values():
        students = tuple(name for name, _ in names)
        outside = names[0][1] - len(names)
        what = f"one file (a hard link, {names[0][1]} names)"
        if outside:
            what += f": {outside} name(s) outside the class"
        findings.append((students, what))
    return findings
