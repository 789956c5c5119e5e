"""The class's similarity report: similarity.html for instructors and similarity.csv, beside
grade_table.csv. Advice for a person; no grade depends on it.

    write_similarity_report(course_root, submissions=None)

is what every grading run calls once the class is graded: `python -m autograder demo`, the
cluster's `collect`, and a JupyterHub's autograde, when the course has one (call it with the
course folder after `nbgrader autograde`). It compares the collected notebooks,
`<course>/submitted/<student>/ddim/ddim.ipynb`, with each other and with the solution cells of
`<course>/solutions/ddim/ddim.ipynb`, leaving out what the release `<course>/assignment/ddim/
ddim.ipynb` gives everyone. Given the original `submissions` folder too, it lists the notebooks
that are one file under two names (links, which collect.py refused to grade).
"""

import csv
import os
import sys
import time
from pathlib import Path

from copydetect.utils import highlight_overlap
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from traitlets.config.loader import PyFileConfigLoader

from autograder.intake.collect import ASSIGNMENT, NOTEBOOK
from autograder.intake.notebook_reader import read_notebook_text
from autograder.similarity.pairs import (
    SimilarityReport,
    compare_class,
    read_written_code,
    release_lines,
    shared_files,
    written_code,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
GRADING_CONFIG = REPO_ROOT / "nbgrader_config.py"
TEMPLATES = Path(__file__).resolve().parent / "templates"
HTML_FILE, CSV_FILE = "similarity.html", "similarity.csv"
MAX_SHOWN = 100  # side-by-side views in the page; the CSV lists every flagged pair


def load_settings(config_file=GRADING_CONFIG):
    """The SimilarityReport thresholds set in the grading configuration (nbgrader_config.py),
    else their defaults."""
    environment, import_path = dict(os.environ), list(sys.path)
    try:
        config = PyFileConfigLoader(Path(config_file).name,
                                    str(Path(config_file).parent)).load_config()
    finally:  # the file also sets up nbgrader's processes (PATH, PYTHONPATH ...): not ours
        os.environ.clear()
        os.environ.update(environment)
        sys.path[:] = import_path
    return SimilarityReport(config=config)


def highlighted(code, slices):
    """The code as HTML, its matching parts in <mark>."""
    if len(slices) == 0 or slices.shape[1] == 0:
        return escape(code)
    html, _ = highlight_overlap(code, slices, "<mark>", "</mark>", escape_html=True)
    return Markup(html)


def side_by_side(match, codes):
    return {"match": match,
            "first_code": highlighted(codes[match.first], match.first_slices),
            "second_code": highlighted(codes[match.second], match.second_slices)}


def course_codes(course_root, students, given_lines):
    """({student: written code}, {student: why not compared})."""
    codes, problems = {}, {}
    for student in students:
        code, problem = read_written_code(
            Path(course_root) / "submitted" / student / ASSIGNMENT / NOTEBOOK, given_lines)
        if problem is not None:
            problems[student] = problem
        elif not code.strip():
            problems[student] = "wrote no code of their own"
        else:
            codes[student] = code
    return codes, problems


def pair_note(match, codes, near_solution):
    notes = []
    if codes[match.first] == codes[match.second]:
        notes.append("identical code")
    if {match.first, match.second} <= near_solution:
        notes.append("both match the solution")
    return ", ".join(notes)


def similarity_rows(flagged_pairs, solution_matches, same_files, settings):
    header = ["kind", "first", "second", "similarity", "first_share", "second_share",
              "flagged", "note"]
    rows = [["same file", *(list(students) + [""])[:2], "1.00", "", "", "yes", what]
            for students, what in same_files]
    for match, note in flagged_pairs:
        rows.append(["pair", match.first, match.second, f"{match.similarity:.2f}",
                     f"{match.first_share:.2f}", f"{match.second_share:.2f}", "yes", note])
    for match in solution_matches:
        flagged = match.similarity >= settings.solution_threshold
        rows.append(["solution", match.first, "solution", f"{match.similarity:.2f}",
                     f"{match.first_share:.2f}", f"{match.second_share:.2f}",
                     "yes" if flagged else "no", ""])
    return header, rows


def write_similarity_report(course_root, submissions=None, settings=None):
    """Writes similarity.html and similarity.csv in the course folder; returns a one-line
    summary for the grading run's output."""
    started = time.monotonic()
    course_root = Path(course_root)
    settings = settings or load_settings()
    given_lines = release_lines(course_root / "assignment" / ASSIGNMENT / NOTEBOOK)
    solution_code = written_code(read_notebook_text(
        (course_root / "solutions" / ASSIGNMENT / NOTEBOOK).read_text(encoding="utf-8")),
        given_lines)
    submitted = course_root / "submitted"
    students = sorted(path.name for path in (submitted.iterdir() if submitted.is_dir() else [])
                      if path.is_dir() and not path.is_symlink())
    codes, problems = course_codes(course_root, students, given_lines)
    pairs, solution_matches = compare_class(codes, solution_code, settings)
    same_files = shared_files(submissions) if submissions is not None else []

    solution_flagged = [match for match in solution_matches
                        if match.similarity >= settings.solution_threshold]
    near_solution = {match.first for match in solution_flagged}
    above = [match for match in pairs if match.similarity >= settings.pair_threshold]
    # two students who both wrote the solution resemble each other through it: one line
    shown = [match for match in above if not {match.first, match.second} <= near_solution]
    through_solution = len(above) - len(shown)
    flagged_pairs = [(match, pair_note(match, codes, near_solution)) for match in above]

    header, rows = similarity_rows(flagged_pairs, solution_matches, same_files, settings)
    with open(course_root / CSV_FILE, "w", newline="") as file:
        csv.writer(file).writerows([header, *rows])
    all_codes = {**codes, "solution": solution_code}
    environment = Environment(loader=FileSystemLoader(TEMPLATES),
                              autoescape=select_autoescape(["html", "j2"]))
    page = environment.get_template("similarity.html.j2").render(
        settings=settings, students=len(students), compared=len(codes), problems=problems,
        same_files=same_files,
        pairs=[{**side_by_side(match, all_codes), "note": pair_note(match, codes, near_solution)}
               for match in shown[:MAX_SHOWN]],
        pairs_total=len(shown), through_solution=through_solution,
        near_solution=sorted(near_solution),
        solution_matches=[side_by_side(match, all_codes)
                          for match in solution_flagged[:MAX_SHOWN]],
        solution_shares=solution_matches, seconds=time.monotonic() - started)
    (course_root / HTML_FILE).write_text(page, encoding="utf-8")
    return (f"Similarity: {len(same_files)} shared file(s), {len(above)} pair(s) at or above "
            f"{settings.pair_threshold:.2f} ({through_solution} of them through the solution), "
            f"{len(solution_flagged)} submission(s) at or above "
            f"{settings.solution_threshold:.2f} of the solution (see {HTML_FILE}, {CSV_FILE}; "
            f"{time.monotonic() - started:.1f} s)")
