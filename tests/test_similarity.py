"""The similarity report: the planted copies are flagged, honest independent solutions are not,
links show as one file under two names, and the page reads well in a real browser.

Nothing here grades: the report reads the committed sample notebooks directly, in seconds.
"""

import ast
import builtins
import csv
import io
import keyword
import os
import shutil
import time
import tokenize
from pathlib import Path

import pytest
from browser import screenshot, what_a_reader_sees

from autograder.intake import collect
from autograder.intake.notebook_reader import read_notebook_text
from autograder.samples import catalogue
from autograder.samples.copies import INDEPENDENT_PAIR, PLANTED_PAIRS, SIMILARITY_SAMPLES
from autograder.similarity.pairs import (
    SimilarityReport,
    compare,
    compare_class,
    fingerprint,
    read_written_code,
    release_lines,
    shared_files,
    written_code,
)
from autograder.similarity.report import CSV_FILE, HTML_FILE, load_settings, write_similarity_report

REPO_ROOT = Path(__file__).resolve().parents[1]
RELEASE = REPO_ROOT / "assignment" / "ddim" / "ddim.ipynb"
SOLUTION = REPO_ROOT / "solutions" / "ddim" / "ddim.ipynb"
SAMPLES = catalogue.SUBMISSIONS


@pytest.fixture(scope="module")
def given_lines():
    return release_lines(RELEASE)


@pytest.fixture(scope="module")
def settings():
    return load_settings()


def code_of(student, given_lines):
    code, problem = read_written_code(SAMPLES / student / catalogue.NOTEBOOK,
                                      given_lines)
    assert problem is None, problem
    return code


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course folder as a grading run leaves it, with every committed sample collected (no
    grading), its similarity report written once; and the seconds that took."""
    root = tmp_path_factory.mktemp("similarity")
    course_root = root / "course"
    for folder in ("assignment", "solutions"):
        shutil.copytree(REPO_ROOT / folder / "ddim", course_root / folder / "ddim")
    for student in collect.student_folders(SAMPLES):
        collect.collect_student(SAMPLES, student, course_root)
    started = time.perf_counter()
    summary = write_similarity_report(course_root, SAMPLES)
    seconds = time.perf_counter() - started
    with open(course_root / CSV_FILE) as file:
        rows = list(csv.DictReader(file))
    return course_root, rows, summary, seconds


# ---- the samples are what they claim, checked with Python's own parser ----------------------


def anonymised_functions(source):
    """{function body with every name replaced} of a cell, as a set: independent of order,
    names and comments."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        for field in ("id", "arg", "name", "attr"):
            if isinstance(getattr(node, field, None), str):
                setattr(node, field, "_")
    return {ast.dump(node) for node in tree.body}


def test_the_planted_copies_are_copies_and_the_independent_solutions_are_not():
    original = SIMILARITY_SAMPLES["honest-independent-a"][0]
    renamed = SIMILARITY_SAMPLES["copy-renamed"][0]
    commented = SIMILARITY_SAMPLES["copy-commented"][0]
    independent = SIMILARITY_SAMPLES["honest-independent-b"][0]
    assert (SAMPLES / "copy-verbatim" / "ddim.ipynb").read_bytes() == (
        SAMPLES / "honest-independent-a" / "ddim.ipynb").read_bytes()
    for function, source in original.items():
        assert ast.dump(ast.parse(commented[function])) == ast.dump(ast.parse(source))
        assert commented[function].count("#") > source.count("#")
        assert anonymised_functions(renamed[function]) == anonymised_functions(source)
        assert renamed[function] != source
        assert anonymised_functions(independent[function]) != anonymised_functions(source)
    helpers = [node.name for node in ast.parse(original["reverse_diffusion"]).body
               if isinstance(node, ast.FunctionDef)]
    renamed_helpers = [node.name for node in ast.parse(renamed["reverse_diffusion"]).body
                       if isinstance(node, ast.FunctionDef)]
    assert helpers[:2] == ["times_column", "remix"] and renamed_helpers[:2] == ["mix",
                                                                                 "time_tensor"]


# ---- what is compared ----------------------------------------------------------------------


def test_only_the_students_own_code_is_compared(given_lines):
    correct = code_of("correct", given_lines)
    assert "start_angle = ops.arccos(self.config.max_signal_rate)" in correct
    for given in ("def diffusion_schedule(self, diffusion_times):", "YOUR CODE HERE",
                  "Diffusion times (batch, 1, 1, 1)", "BEGIN SOLUTION", "import keras"):
        assert given not in correct, given
    assert code_of("untouched", given_lines) == ""
    helper = code_of("honest-helpers-in-extra-cell", given_lines)
    assert "def interpolate(start, end, fraction):" in helper, "the student's own cell"


def renamed_everywhere(source):
    """The source with every name but keywords, builtins and `self` renamed, by Python's own
    tokenizer (independent of the pygments lexer that copydetect uses)."""
    renames, tokens = {}, []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        text = token.string
        if (token.type == tokenize.NAME and not keyword.iskeyword(text)
                and not hasattr(builtins, text) and text != "self"):
            text = renames.setdefault(text, f"name_{len(renames)}")
        tokens.append((token.type, text))
    return tokenize.untokenize(tokens)


UNRELATED = """values = sorted(set(open("data.txt").read().split()))
counts = {value: len(value) for value in values}
print(max(counts, key=counts.get), min(counts.values()))
with open("out.txt", "w") as file:
    file.write(str(counts))
"""


def test_renamed_variables_match_and_unrelated_code_does_not(given_lines, settings):
    solution = written_code(read_notebook_text(SOLUTION.read_text()), given_lines)
    renamed = renamed_everywhere(solution)
    assert "signal_rates" not in renamed and "name_" in renamed
    same = compare("a", "b", fingerprint(solution, settings), fingerprint(renamed, settings))
    other = compare("a", "b", fingerprint(solution, settings), fingerprint(UNRELATED, settings))
    assert same.similarity == 1.0 and same.first_share == same.second_share == 1.0
    assert other.similarity < 0.1


def test_the_planted_pairs_are_flagged_and_the_independent_solutions_are_not(given_lines,
                                                                             settings):
    students = [*SIMILARITY_SAMPLES, "correct"]
    codes = {student: code_of(student, given_lines) for student in students}
    solution = written_code(read_notebook_text(SOLUTION.read_text()), given_lines)
    pairs, solution_matches = compare_class(codes, solution, settings)
    similarity = {frozenset((match.first, match.second)): match.similarity for match in pairs}
    for pair in PLANTED_PAIRS:
        assert similarity[frozenset(pair)] >= settings.pair_threshold, pair
    assert similarity.get(frozenset(INDEPENDENT_PAIR), 0.0) < settings.pair_threshold
    for student in INDEPENDENT_PAIR:
        assert similarity[frozenset((student, "correct"))] < settings.pair_threshold
    against_solution = {match.first: match.similarity for match in solution_matches}
    assert against_solution["correct"] == 1.0
    for student in SIMILARITY_SAMPLES:
        assert against_solution[student] < settings.solution_threshold, student
    assert [match.similarity for match in pairs] == sorted(
        (match.similarity for match in pairs), reverse=True), "most similar first"


def test_the_thresholds_come_from_the_grading_configuration(tmp_path):
    assert load_settings().pair_threshold == 0.5
    config = tmp_path / "nbgrader_config.py"
    config.write_text("c = get_config()\nc.SimilarityReport.pair_threshold = 0.3\n"
                      "c.SimilarityReport.solution_threshold = 0.95\n")
    environment = dict(os.environ)
    settings = load_settings(config)
    assert (settings.pair_threshold, settings.solution_threshold) == (0.3, 0.95)
    assert settings.noise_threshold == SimilarityReport().noise_threshold
    assert dict(os.environ) == environment


# ---- links ---------------------------------------------------------------------------------


def test_a_hard_link_to_a_neighbours_notebook_is_refused_and_shows_as_one_file(tmp_path):
    submissions = tmp_path / "submissions"
    for student in ("author", "copier", "pointer", "outsider", "honest"):
        (submissions / student).mkdir(parents=True)
    shutil.copy(SAMPLES / "honest-independent-a" / "ddim.ipynb", submissions / "author")
    shutil.copy(SAMPLES / "honest-independent-b" / "ddim.ipynb", submissions / "honest")
    os.link(submissions / "author" / "ddim.ipynb", submissions / "copier" / "ddim.ipynb")
    (submissions / "pointer" / "ddim.ipynb").symlink_to("../author/ddim.ipynb")
    (tmp_path / "elsewhere.ipynb").write_text("{}")
    os.link(tmp_path / "elsewhere.ipynb", submissions / "outsider" / "ddim.ipynb")

    # what collect.py does: a hard link has two names, so both of its students are refused
    refused = {student: collect.collect_student(submissions, student, tmp_path / "course")
               for student in ("author", "copier", "honest")}
    assert "is a hard link (2 names for one file)" in refused["author"][0]
    assert "is a hard link (2 names for one file)" in refused["copier"][0]
    assert refused["honest"] == []

    found = dict(shared_files(submissions))
    assert found[("author", "copier")] == "one file (a hard link, 2 names)"
    assert "outside the class" in found[("outsider",)]
    assert found[("pointer", "author")] == "pointer's ddim.ipynb is a symbolic link to author's"
    assert len(found) == 3


# ---- the report of a class -----------------------------------------------------------------


def test_the_class_report_lists_the_planted_pairs_links_and_solution_matches(course):
    course_root, rows, summary, seconds = course
    pairs = {frozenset((row["first"], row["second"])): row for row in rows
             if row["kind"] == "pair"}
    for pair in PLANTED_PAIRS:
        assert pairs[frozenset(pair)]["flagged"] == "yes"
    assert pairs[frozenset(("copy-verbatim", "honest-independent-a"))]["note"] == (
        "identical code")
    assert frozenset(INDEPENDENT_PAIR) not in pairs
    assert pairs[frozenset(("correct", "honest-jupyterlab"))]["note"] == (
        "identical code, both match the solution")
    solution = {row["first"]: row for row in rows if row["kind"] == "solution"}
    assert solution["correct"]["flagged"] == "yes"
    assert solution["honest-independent-a"]["flagged"] == "no"
    assert "untouched" not in solution and "broken-invalid-json" not in solution
    same = {(row["first"], row["second"]) for row in rows if row["kind"] == "same file"}
    assert ("cheat-symlinks-neighbour", "correct") in same
    assert "Similarity:" in summary


def test_the_report_changes_nothing_but_its_own_two_files(course, tmp_path):
    course_root, *_ = course
    before = {path: path.stat().st_mtime_ns for path in course_root.rglob("*")
              if path.name not in (HTML_FILE, CSV_FILE)}
    write_similarity_report(course_root, SAMPLES)
    after = {path: path.stat().st_mtime_ns for path in course_root.rglob("*")
             if path.name not in (HTML_FILE, CSV_FILE)}
    assert after == before


def test_the_report_reads_well_in_a_real_browser(course, tmp_path):
    course_root, rows, _, _ = course
    seen = what_a_reader_sees(course_root / HTML_FILE, tmp_path)
    text = seen["visibleText"]
    assert seen["overflowing"] == 0 and not seen["pageWider"], "long lines must wrap"
    assert "no grade depends on it" in text
    assert "copy-renamed and honest-independent-a: 1.00" in text
    assert "pair(s) are not shown: both of their students match the instructor's solution" in text
    assert "correct and the solution: 1.00" in text
    assert "the notebook is not valid JSON" in text  # broken-invalid-json, not compared
    assert seen["marks"] > 10, "the matching code is highlighted"
    picture = screenshot(course_root / HTML_FILE, tmp_path / "similarity.png", tmp_path)
    assert picture.stat().st_size > 20_000


def test_a_class_with_nothing_collected_still_gets_its_report(tmp_path):
    for folder in ("assignment", "solutions"):
        shutil.copytree(REPO_ROOT / folder / "ddim", tmp_path / folder / "ddim")
    summary = write_similarity_report(tmp_path)
    assert summary.startswith("Similarity: 0 shared file(s), 0 pair(s)")
    assert "0 of 0 submissions compared" in (tmp_path / HTML_FILE).read_text()
