"""A pattern scanner that flags suspicious submissions for manual review.

It is triage, not a verdict: simple obfuscation defeats it, and a flag can be innocent. The
grades never depend on it; its report sits beside them so that a person can look.
"""

import json
import re
from pathlib import Path

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
PATTERNS = {reason: re.compile(pattern) for reason, pattern in SUSPICIOUS.items()}


def scan_notebook(path):
    """[(cell label, reason, line)] for every suspicious line in the notebook's code cells."""
    try:
        notebook = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        return [("-", "is not a readable notebook", str(error)[:120])]
    findings = []
    for index, cell in enumerate(notebook.get("cells", [])):
        nbgrader = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") != "code" or (nbgrader.get("locked") and
                                                not nbgrader.get("solution")):
            continue  # locked cells are the instructor's, restored by nbgrader before grading
        label = nbgrader.get("grade_id", f"cell {index}")
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        for line in source.splitlines():
            for reason, pattern in PATTERNS.items():
                if pattern.search(line):
                    findings.append((label, reason, line.strip()[:120]))
    return findings


def scan_folder(submitted):
    """{student: findings} for a folder laid out as <student>/<assignment>/*.ipynb."""
    report = {}
    for student in sorted(path for path in Path(submitted).iterdir() if path.is_dir()):
        report[student.name] = [finding for notebook in sorted(student.rglob("*.ipynb"))
                                for finding in scan_notebook(notebook)]
    return report


def format_report(report):
    lines = ["# Submission scanner report", "",
             "Flags are for manual review only; grades do not depend on them.", ""]
    for student, findings in report.items():
        lines.append(f"## {student}: {'FLAGGED' if findings else 'nothing found'}")
        lines.extend(f"- `{label}`: {reason}: `{line}`" for label, reason, line in findings)
        lines.append("")
    return "\n".join(lines)
