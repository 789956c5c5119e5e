"""A pattern scanner that flags suspicious submissions for manual review.

It is triage, not a verdict: simple obfuscation defeats it, and a flag can be innocent. The
grades never depend on it; its report sits beside them so that a person can look.
"""

import json
import os
import re
import stat
from pathlib import Path

from autograder.intake.collect import MAX_NOTEBOOK_BYTES
from autograder.intake.no_follow import NotRegularFileError, open_no_follow

SUSPICIOUS = {
    "patches numpy's assertions": r"(np|numpy)\.testing\.\w+\s*=|assert_\w+\s*=\s*lambda",
    "touches the autograder or nbgrader": r"\bautograder\b|\bnbgrader\b|gradebook",
    "reads course files outside its folder": r"\.\./|solutions[/\\]|source[/\\]",
    "registers IPython input transformers or hooks": (
        r"input_transformers|register_transformer|set_custom_exc|events\.register|"
        r"get_ipython\(\)\.(run_cell|ast_transformers|showtraceback)"),
    "starts processes": r"\bsubprocess\b|os\.(system|fork|spawn\w*|exec\w*|setsid)|Popen|"
                        r"multiprocessing|daemon",
    "kills or exits the kernel": r"os\._exit|os\.kill|signal\.",
    "rewrites modules or builtins": r"sys\.modules\[|__builtins__|builtins\.|importlib\.reload|"
                                    r"setattr\(\s*(np|numpy|keras|ops)\b",
    "uses low-level escapes": r"\bctypes\b|\bexec\(|\beval\(|__import__|base64|marshal|pickle",
}
# a file's path inside the submission folder: a package or hook that Python would import first
SHADOWS = re.compile(r"(^|/)(numpy|keras|tensorflow|autograder|diffusion_course|nbgrader|IPython|"
                     r"ipykernel|jupyter_client)(/|\.py$)|\.pth$|__pycache__|sitecustomize|"
                     r"usercustomize|\.jupyter|_config\.py$")
SHADOWS_REASON = "ships a file that shadows a package or hooks imports"
REFUSED = "refused: trusted code does not follow or copy it"
PATTERNS = {reason: re.compile(pattern) for reason, pattern in SUSPICIOUS.items()}
# a notebook is scanned whole, up to the size the grader takes (its saved plots make it large;
# only its code cells are scanned); of any other file, which is never graded, the first MiB
MAX_OTHER_FILE_BYTES = 2**20
NO_NOTEBOOK = "is not a readable notebook"


def _read(path, limit, whole=True):
    """(text, None) of a regular file, never through a link (its first `limit` bytes unless
    `whole`); (None, why) otherwise."""
    try:
        file = open_no_follow(path)
    except NotRegularFileError:
        return None, "is not a regular file"
    except OSError as error:
        return None, f"cannot be read ({error.strerror})"
    with file:
        data = file.read(limit + 1)
    if whole and len(data) > limit:
        return None, f"is over {limit} bytes, the most the grader takes (it is not graded)"
    return data[:limit].decode("utf-8", errors="replace"), None


def _scan_lines(label, text):
    return [(label, reason, line.strip()[:120]) for line in text.splitlines()
            for reason, pattern in PATTERNS.items() if pattern.search(line)]


def scan_notebook_text(text):
    """[(cell label, reason, line)] for every suspicious line in the notebook's code cells.

    A malformed notebook (not JSON, `cells` not a list, a cell not an object) is one finding,
    never an exception: one broken submission must not cost the class its report.
    """
    try:
        notebook = json.loads(text.lstrip("\ufeff"))
    except ValueError as error:
        return [("-", NO_NOTEBOOK, str(error)[:120])]
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        return [("-", NO_NOTEBOOK, "it has no list of cells")]
    findings = []
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict):
            findings.append((f"cell {index}", NO_NOTEBOOK, "the cell is not an object"))
            continue
        metadata = cell.get("metadata")
        nbgrader = metadata.get("nbgrader") if isinstance(metadata, dict) else None
        nbgrader = nbgrader if isinstance(nbgrader, dict) else {}
        if cell.get("cell_type") != "code" or (nbgrader.get("locked") and
                                                not nbgrader.get("solution")):
            continue  # locked cells are the instructor's, restored by nbgrader before grading
        source = cell.get("source", "")
        source = "".join(map(str, source)) if isinstance(source, list) else str(source)
        findings.extend(_scan_lines(str(nbgrader.get("grade_id", f"cell {index}")), source))
    return findings


def scan_submission(folder):
    """[(label, reason, line)] for one student's folder: its notebooks' code cells, every
    other file in it (a planted package, a .pth file), and every link or special file."""
    findings = []
    for directory, subfolders, files in os.walk(folder):  # never descends into a link
        for name in sorted(subfolders + files):
            path = Path(directory) / name
            label = str(path.relative_to(folder))
            info = path.lstat()
            if SHADOWS.search(label) and not stat.S_ISDIR(info.st_mode):
                findings.append((label, SHADOWS_REASON, name))
            if stat.S_ISLNK(info.st_mode):
                findings.append((label, REFUSED, f"a symbolic link to {os.readlink(path)}"))
            elif stat.S_ISDIR(info.st_mode):
                continue
            elif not stat.S_ISREG(info.st_mode):
                findings.append((label, REFUSED, "not a regular file (a FIFO or device)"))
            elif info.st_nlink > 1:
                findings.append((label, REFUSED, f"a hard link ({info.st_nlink} names)"))
            else:
                findings.extend(_scan_file(path, label))
        subfolders[:] = [name for name in subfolders
                         if not (Path(directory) / name).is_symlink()]
    return findings


def _scan_file(path, label):
    if not path.name.endswith(".ipynb"):
        text, problem = _read(path, MAX_OTHER_FILE_BYTES, whole=False)
        return [(label, "could not be scanned", problem)] if problem else _scan_lines(label, text)
    text, problem = _read(path, MAX_NOTEBOOK_BYTES)
    if problem is not None:
        return [(label, "could not be scanned", problem)]
    return [(f"{label}: {cell}", reason, line) for cell, reason, line in scan_notebook_text(text)]


def scan_folder(submissions):
    """{student: findings} for a folder with one subfolder per student."""
    report = {}
    for entry in sorted(os.scandir(submissions), key=lambda entry: entry.name):
        if entry.is_symlink():
            report[entry.name] = [("-", REFUSED, "the student folder is a symbolic link")]
        elif entry.is_dir(follow_symlinks=False):
            report[entry.name] = scan_submission(Path(entry.path))
    return report


def format_report(report):
    lines = ["# Submission scanner report", "",
             "Flags are for manual review only; grades do not depend on them.", ""]
    for student, findings in report.items():
        name = student if student.isprintable() else repr(student)
        lines.append(f"## {name}: {'FLAGGED' if findings else 'nothing found'}")
        lines.extend(f"- `{label}`: {reason}: `{line}`" for label, reason, line in findings)
        lines.append("")
    return "\n".join(lines)
