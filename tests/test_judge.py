"""The trusted grader: the reference passes, each typical mistake fails its own test only, and a
fault of the grader is never the student's zero.

Every grading runs the real student runner in sandboxed subprocesses and a real (short)
training run; the reference run and the untrained model are measured once, in a cache shared
by the whole module. Submissions whose failed functions are replaced by the reference's train
exactly the reference, so their training verdict reuses that run.
"""

import ast
import copy
import dataclasses
import io
import json
import os
import re
import signal
import struct
import subprocess
import sys
from concurrent.futures import Future
from pathlib import Path

import nbformat
import numpy as np
import pytest
import traitlets.config
from nbgrader.api import Gradebook
from nbgrader.nbgraderformat.common import SchemaTooOldError
from nbgrader.preprocessors import ClearSolutions, ComputeChecksums, LockCells, SaveCells

import diffusion_course
from autograder import (
    GRADER_ERROR_FILE,
    VERDICTS_FILE,
    honest_styles,
    records_folder,
    sample_submissions,
)
from autograder.errors import GraderError
from autograder.forbidden_imports import FORBIDDEN_MODULES, forbidden_imports, forbidden_paths
from autograder.grader_state.cache import MetricsCache
from autograder.grader_state.evaluation import Evaluator
from autograder.judge import _Session, _TrainingRuns, as_program, grade
from autograder.mistakes import (
    FUNCTION_NAMES,
    MISTAKES,
    unanswered_submission,
)
from autograder.reference import setup_source, solution_sources
from autograder.runner import ipython_cells, launch, probes
from autograder.runner.channel import ArrayStore, MalformedMessage, read_message, write_message
from autograder.submission import (
    UnreadableSubmission,
    function_programs,
    normalise_cells,
    read_notebook_text,
)
from autograder.verdict import JUDGING, ExternalVerdict, write_record
from autograder.verdicts import TEST_CELLS, TRAINING_TEST_CELL, judge_units
from autograder.verdicts.checks import Verdict
from autograder.verdicts.training import judge_training, training_setup
from diffusion_course.config import DDIMConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
ALL_CELLS = (*TEST_CELLS.values(), TRAINING_TEST_CELL)

# what the failure message must say, so that the student can find the mistake
EXPECTED_HINTS = {
    "schedule_sin_cos_swapped": "are sin and cos swapped",
    "denoise_gets_noise_rate": "(that is noise_rates)",
    "denoise_always_uses_training_network": "it used self.network",
    "sampler_denoises_with_training_network": "it passed training=[True]",
    "sampler_remixes_at_current_rates": "remixed at the previous step's rates",
    "sampler_returns_noisy_images": "it is the last remix, next_noisy_images",
    "sampler_step_off_by_one": "off by one step",
}


@pytest.fixture(scope="module")
def grade_submission(tmp_path_factory):
    """Grades {function name: source} in the quick profile, with one cache for the module."""
    cache_dir = tmp_path_factory.mktemp("grader-cache")
    config = DDIMConfig.from_profile("quick")

    def grade_it(functions, **options):
        return grade(functions, setup_source(), config=config, **{"cache_dir": cache_dir,
                                                                   **options})

    grade_it.cache_dir = cache_dir
    return grade_it


def test_the_reference_solution_passes_every_test(grade_submission):
    verdicts = grade_submission(solution_sources())
    assert set(verdicts) == set(ALL_CELLS)
    for cell, verdict in verdicts.items():
        assert verdict.passed and verdict.score_fraction == 1.0, (cell, verdict.message)
    # the same code and seed as the reference run: the very same numbers
    kid, reference_kid = re.search(r"KID ([0-9.]+) \(reference ([0-9.]+)",
                                   verdicts[TRAINING_TEST_CELL].message).groups()
    assert kid == reference_kid


def sample_programs(sample):
    """The judge's programs of a committed sample submission, read as nbgrader's hook reads it."""
    text = (sample_submissions.SUBMISSIONS / sample / sample_submissions.NOTEBOOK).read_text(
        encoding="utf-8")
    return function_programs(read_notebook_text(text), FUNCTION_NAMES)


def points(verdicts):
    """{test cell: points} as nbgrader scores the verdicts (a failed cell scores 0)."""
    return {cell: sample_submissions.POINTS[cell] * verdict.score_fraction if verdict.passed
            else 0 for cell, verdict in verdicts.items()}


# Every typical mistake, from its committed sample submission: the end-to-end test leaves these
# samples to this module (sample_submissions.JUDGE_LEVEL_SAMPLES), so the grade here is the one
# the README's table promises.
@pytest.mark.parametrize("mistake_name", sorted(MISTAKES))
def test_a_typical_mistake_fails_only_its_own_test(grade_submission, mistake_name):
    mistake = MISTAKES[mistake_name]
    sample = f"mistake-{mistake_name.replace('_', '-')}"
    assert sample in sample_submissions.JUDGE_LEVEL_SAMPLES
    verdicts = grade_submission(sample_programs(sample))
    failed_cell = TEST_CELLS[mistake.function]
    failed = verdicts[failed_cell]
    assert not failed.passed
    assert 0.0 <= failed.score_fraction < 1.0
    assert EXPECTED_HINTS[mistake_name] in failed.message, failed.message
    for cell in ALL_CELLS:
        if cell != failed_cell:
            assert verdicts[cell].passed, (cell, verdicts[cell].message)
    # the training run replaced the failed function by the reference's
    assert f"the reference {mistake.function}" in verdicts[TRAINING_TEST_CELL].message
    assert points(verdicts) == sample_submissions.EXPECTED_SCORES[sample]


def test_an_unanswered_function_fails_its_test_and_trains_with_the_reference(grade_submission):
    verdicts = grade_submission(unanswered_submission("denoise"))
    assert not verdicts["test_denoise"].passed
    assert verdicts["test_denoise"].score_fraction == 0.0
    assert "NotImplementedError" in verdicts["test_denoise"].message
    assert verdicts["test_diffusion_schedule"].passed
    assert verdicts["test_reverse_diffusion"].passed
    training = verdicts[TRAINING_TEST_CELL]
    assert training.passed and "the reference denoise" in training.message


def test_an_unanswered_submission_fails_all_four_tests(grade_submission):
    verdicts = grade_submission(unanswered_submission(*FUNCTION_NAMES))
    for cell, verdict in verdicts.items():
        assert not verdict.passed and verdict.score_fraction == 0.0, (cell, verdict.message)
    assert "nothing of yours to train" in verdicts[TRAINING_TEST_CELL].message


def test_a_cell_that_does_not_compile_costs_its_own_function_only(grade_submission):
    submission = {**solution_sources(),
                  "diffusion_schedule": "def diffusion_schedule(self, diffusion_times)\n"}
    verdicts = grade_submission(submission)
    schedule = verdicts["test_diffusion_schedule"]
    assert not schedule.passed and "SyntaxError" in schedule.message
    assert "line 1 of your diffusion_schedule cell" in schedule.message
    assert verdicts["test_denoise"].passed and verdicts["test_reverse_diffusion"].passed


def test_a_runner_that_kills_itself_fails_every_test_with_a_clear_message(grade_submission):
    submission = {**solution_sources(), "denoise": "import os\n\nos._exit(3)\n"}
    verdicts = grade_submission(submission)
    for cell in TEST_CELLS.values():
        assert not verdicts[cell].passed
        assert "crashed (exit code 3)" in verdicts[cell].message, verdicts[cell].message
    assert not verdicts[TRAINING_TEST_CELL].passed




def test_a_runner_stuck_in_student_code_that_defeats_the_time_limit_is_stopped(
        grade_submission, monkeypatch):
    # no sign of life for longer than PROGRESS_WINDOW_S after the student's code began: theirs
    monkeypatch.setattr(launch, "PROGRESS_WINDOW_S", 10)
    stuck = ("import signal\nimport time\n\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
             "time.sleep(600)\n")
    verdicts = grade_submission({**solution_sources(), "diffusion_schedule": stuck}, timeout=45)
    for cell in TEST_CELLS.values():
        assert not verdicts[cell].passed
        assert "did not finish within 45 s" in verdicts[cell].message, verdicts[cell].message


def test_an_endless_loop_is_stopped_and_costs_its_own_function_only(monkeypatch):
    """The runner's per-function CPU time limit, here 5 s instead of 30 s, run in this process:
    the loop reaches it however loaded the machine is."""
    monkeypatch.setattr(probes, "FUNCTION_CPU_LIMIT_S", 5)
    monkeypatch.setattr(probes, "FUNCTION_WALL_LIMIT_S", 600)
    config = DDIMConfig.from_profile("quick")
    looping_denoise = "def denoise(self, *args, **kwargs):\n    while True:\n        pass\n"
    sources = {**solution_sources(), "denoise": looping_denoise}
    request = {"preamble": setup_source(), "programs": {
        name: [{"label": f"{name} cell", "source": source, "own": True}]
        for name, source in sources.items()}}
    store = ArrayStore()
    result = probes.run_units(request, config, store, lambda: None)
    stream = io.BytesIO()
    write_message(stream, result, store)
    stream.seek(0)
    verdicts = judge_units(read_message(stream, 2**26), config)
    assert "were stopped (an endless loop?)" in verdicts["denoise"].message, verdicts["denoise"]
    assert verdicts["diffusion_schedule"].passed and verdicts["reverse_diffusion"].passed


# ---- honest variants: extra cells, line endings, byte-order marks, old and new editors -------


def _cell(cell_type, source, grade_id=None, **nbgrader):
    cell = (nbformat.v4.new_code_cell(source) if cell_type == "code"
            else nbformat.v4.new_markdown_cell(source))
    if grade_id is not None:
        cell.metadata["nbgrader"] = {"grade_id": grade_id, "schema_version": 3, **nbgrader}
    return cell


def honest_notebook(answers):
    """A notebook laid out like the release, with the student's extra cells and copied cells."""
    cells = [_cell("code", setup_source(), "setup", locked=True)]
    for name in FUNCTION_NAMES:
        cells.append(_cell("code", answers[name], f"answer_{name}", solution=True))
        cells.append(_cell("code", "print('self-check')", TEST_CELLS[name], grade=True,
                           points=3))
    return nbformat.v4.new_notebook(cells=cells)


# the most common student style: imports and a helper in a cell of their own, used later
HELPER_CELL = """import math


def angle_range(config):
    return math.acos(config.max_signal_rate), math.acos(config.min_signal_rate)
"""


def test_function_programs_run_the_students_extra_cells_before_each_answer():
    notebook = honest_notebook(solution_sources())
    notebook.cells.insert(1, _cell("code", HELPER_CELL))
    notebook.cells.insert(2, _cell("markdown", "my notes"))
    # after test_denoise: visible to reverse_diffusion only
    notebook.cells.insert(7, _cell("code", "STEPS = 3"))
    programs = function_programs(notebook, FUNCTION_NAMES)
    # the release's locked setup cell comes first, as in the notebook; test cells are not run
    assert [(cell.get("release", False), cell["own"]) for cell in
            programs["diffusion_schedule"]] == [(True, False), (False, False), (False, True)]
    assert programs["diffusion_schedule"][1]["source"] == HELPER_CELL
    assert [cell["source"] for cell in programs["reverse_diffusion"]
            if not cell["own"] and not cell.get("release")] == [HELPER_CELL, "STEPS = 3"]
    assert programs["reverse_diffusion"][-1]["own"]
    assert [cell["index"] for cell in programs["reverse_diffusion"]] == [0, 1, 7, 8]


def test_a_copied_answer_cell_or_a_lost_grade_id_becomes_a_plain_student_cell():
    notebook = honest_notebook(solution_sources())
    copy = _cell("code", "def denoise(self, *args):\n    pass\n", "answer_denoise", solution=True)
    lost = _cell("code", "x = 1", None)
    lost.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False}
    unknown = _cell("code", "y = 2", "answer_denoise-Copy1", solution=True)
    notebook.cells[3:3] = [copy, lost, unknown]
    known = {"setup", *(f"answer_{name}" for name in FUNCTION_NAMES), *TEST_CELLS.values()}
    normalised = normalise_cells(notebook, known)
    # the copy's metadata goes (the last copy keeps it, as nbgrader's DeduplicateIds would):
    # nothing is left for DeduplicateIds to empty into {}, which crashed add_missing_task_cells
    assert [("nbgrader" in cell.metadata) for cell in normalised.cells[3:7]] == [
        False, False, False, True]
    # the judge runs both, in order: the draft as an extra cell, then the final answer
    program = function_programs(normalised, FUNCTION_NAMES)["denoise"]
    assert [(cell["source"], cell["own"]) for cell in program if not cell.get("release")][
        -4:] == [(copy.source, False), ("x = 1", False), ("y = 2", False),
                 (solution_sources()["denoise"], True)]


def test_byte_order_marks_crlf_and_classic_notebooks_are_read_and_old_formats_refused():
    notebook = honest_notebook(solution_sources())
    for cell in notebook.cells:
        del cell["id"]  # the classic Notebook writes nbformat 4.4 without cell ids
        cell.metadata["jupyter"] = {"source_hidden": False}  # JupyterLab's metadata
    notebook.nbformat_minor = 4
    notebook.cells[1].outputs = [nbformat.v4.new_output("stream", text="old output\n")]
    text = "\ufeff" + nbformat.writes(notebook).replace("\n", "\r\n")
    read = read_notebook_text(text)
    assert function_programs(read, FUNCTION_NAMES)["denoise"][-1]["source"] == (
        solution_sources()["denoise"])
    version_3 = json.dumps({"nbformat": 3, "nbformat_minor": 0, "worksheets": [],
                            "metadata": {}})
    with pytest.raises(UnreadableSubmission, match="nbformat 3"):
        read_notebook_text(version_3)
    with pytest.raises(UnreadableSubmission, match="not valid JSON"):
        read_notebook_text('{"cells": [')
    with pytest.raises(UnreadableSubmission, match="not a valid Jupyter notebook"):
        read_notebook_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                                       "cells": "not a list"}))


# honest-independent-a and -b: correct solutions written differently from the reference (other
# ops, other order of operations, another time grid, helpers); copy-renamed: a with every name
# changed. Each must pass, and its training land near the reference's.
@pytest.mark.parametrize("sample", ["honest-helpers-in-extra-cell",
                                    "honest-windows-line-endings", "honest-independent-a",
                                    "honest-independent-b", "copy-renamed"])
def test_a_correct_sample_in_another_style_gets_full_marks(
        grade_submission, sample):
    assert sample in sample_submissions.JUDGE_LEVEL_SAMPLES
    verdicts = grade_submission(sample_programs(sample))
    for cell, verdict in verdicts.items():
        assert verdict.passed and verdict.score_fraction == 1.0, (cell, verdict.message)
    assert points(verdicts) == sample_submissions.EXPECTED_SCORES[sample]


@pytest.mark.parametrize("copy", ["copy-verbatim", "copy-commented"])
def test_a_copy_that_changes_no_code_gets_the_grade_of_its_original(copy):
    """The judge runs what Python compiles: the same syntax trees as honest-independent-a's
    (graded above), so the same verdicts (the training is deterministic)."""
    def syntax_trees(sample):
        return {name: [ast.dump(ast.parse(cell["source"])) for cell in program]
                for name, program in sample_programs(sample).items()}

    assert syntax_trees(copy) == syntax_trees("honest-independent-a")
    assert (sample_submissions.EXPECTED_SCORES[copy]
            == sample_submissions.EXPECTED_SCORES["honest-independent-a"])


# ---- the assignment stays the student's work ---------------------------------------------------


def test_importing_the_librarys_schedule_or_sampler_fails_with_the_reason(grade_submission):
    borrowed_schedule = ("from diffusion_course.schedules import CosineSchedule\n\n\n"
                         "def diffusion_schedule(self, diffusion_times):\n"
                         "    return CosineSchedule()(diffusion_times)\n")
    borrowed_sampler = ("from diffusion_course import configurable_ddim\n\n\n"
                        "def reverse_diffusion(self, initial_noise, diffusion_steps):\n"
                        "    return configurable_ddim.ConfigurableDiffusionModel.reverse_diffusion("
                        "self, initial_noise, diffusion_steps)\n")
    verdicts = grade_submission({**solution_sources(), "diffusion_schedule": borrowed_schedule,
                                 "reverse_diffusion": borrowed_sampler})
    for cell, module in (("test_diffusion_schedule", "schedules"),
                         ("test_reverse_diffusion", "configurable_ddim")):
        verdict = verdicts[cell]
        assert not verdict.passed and verdict.score_fraction == 0.0
        assert f"imports diffusion_course.{module}" in verdict.message
        assert "the assignment's functions must be your own code" in verdict.message
    assert verdicts["test_denoise"].passed


def design_space_modules():
    """The library modules that import schedules.py, parametrizations.py or
    continuous_samplers.py at their top, directly or through one another (found from their
    syntax trees): an answer importing them would fail with a bare ImportError if unmasked."""
    library = Path(diffusion_course.__file__).parent
    top_imports = {}
    for path in library.glob("*.py"):
        imported = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module == "diffusion_course":
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "diffusion_course."):
                imported.add(node.module.split(".")[1])
        top_imports[path.stem] = imported
    found = {"schedules", "parametrizations", "continuous_samplers"}
    while True:
        more = {module for module, imported in top_imports.items() if imported & found}
        if more <= found:
            return found
        found |= more


def test_every_design_space_module_is_masked_and_named():
    library = Path(diffusion_course.__file__).parent
    # the multistep weights import nothing of the library, but are the sampler's coefficients
    expected = design_space_modules() | {"multistep_weights"}
    assert {"configurable_ddim", "sampler_comparison", "design_grid"} <= expected
    assert set(FORBIDDEN_MODULES) == expected
    masked = {path.resolve() for path in forbidden_paths()}
    assert {(library / f"{module}.py").resolve() for module in expected} <= masked
    for module in expected:
        assert forbidden_imports(f"from diffusion_course import {module}") == [
            f"diffusion_course.{module}"]


# ---- the runner's result: a pipe the judge owns, read with caps ---------------------------------


def _message_bytes(header, data=b""):
    encoded = json.dumps(header).encode()
    return io.BytesIO(struct.pack(">I", len(encoded)) + encoded + data)


def test_the_result_channel_refuses_oversized_exotic_and_truncated_arrays():
    # 1 GiB declared in a few bytes: refused before anything is allocated
    huge = {"event": "units", "x": {"array": 0},
            "arrays": [{"dtype": "float64", "shape": [2**27]}]}
    with pytest.raises(MalformedMessage, match="cap"):
        read_message(_message_bytes(huge), 2**26)
    for dtype in ("object", "V16", "<U5"):
        with pytest.raises(MalformedMessage):
            read_message(_message_bytes({"arrays": [{"dtype": dtype, "shape": [1]}]}), 2**26)
    with pytest.raises(MalformedMessage):
        read_message(_message_bytes({"arrays": [{"dtype": "float32", "shape": [-1]}]}), 2**26)
    with pytest.raises(EOFError):
        read_message(_message_bytes({"arrays": [{"dtype": "float32", "shape": [4]}]},
                                    b"\0" * 8), 2**26)
    # a well-formed message comes back exactly
    store, stream = ArrayStore(), io.BytesIO()
    write_message(stream, {"value": store.add(np.arange(6.0).reshape(2, 3)),
                           "scalar": store.add(np.int64(7))}, store)
    stream.seek(0)
    message = read_message(stream, 2**20)
    assert message["value"].tolist() == [[0, 1, 2], [3, 4, 5]] and message["scalar"] == 7


FORGED_RESULT = """import gc, json, struct
channel = next(o for o in gc.get_objects() if type(o).__name__ == "_Channel")
header = json.dumps({"event": "units", "arrays": [{"dtype": "float64", "shape": [2**30]}]})
channel.stream.write(struct.pack(">I", len(header)) + header.encode() + b"\\0" * 2**20)
channel.stream.flush()
"""


def test_a_forged_oversized_result_is_refused_and_costs_the_student(grade_submission):
    verdicts = grade_submission({**solution_sources(), "diffusion_schedule": FORGED_RESULT})
    for cell in TEST_CELLS.values():
        assert not verdicts[cell].passed
        assert "malformed result" in verdicts[cell].message, verdicts[cell].message


# ---- a fault of the grader is never the student's zero ------------------------------------------


RAN = {"ready": True, "student_code_ran": True}


@pytest.mark.parametrize("evidence, reason", [
    ({"report": {"setup_error": "bwrap: cannot mount /proc"}, "returncode": 125},
     "sandbox could not be set up"),
    ({"returncode": 125, **RAN}, "sandbox could not be set up"),
    ({"report": {"limit": "memory limit 2 GiB exceeded"}, "returncode": -9},
     "before any student code ran"),
    ({"timed_out": 180, "ready": False}, "did not get to the student's code"),
    ({"timed_out": 240, "seconds_since_progress": 2.0, **RAN}, "still making progress"),
    ({"returncode": -signal.SIGKILL, **RAN}, "killed from outside"),
    ({"returncode": 1, "ready": True, "runner_error": {"type": "OSError",
                                                       "message": "No space left on device"}},
     "before running any student code"),
])
def test_faults_of_the_grader_are_grader_errors(evidence, reason):
    failure = launch.classify_failure("training run", evidence)
    assert isinstance(failure, GraderError) and reason in str(failure), failure


@pytest.mark.parametrize("evidence, reason", [
    ({"report": {"limit": "memory limit 2 GiB exceeded"}, "returncode": -9, **RAN},
     "memory limit 2 GiB exceeded in the training run"),
    ({"timed_out": 240, "seconds_since_progress": 100.0, **RAN}, "did not finish within 240 s"),
    ({"timed_out": 240, "seconds_since_progress": 5.0, "cancelled": True, **RAN},
     "still making progress"),
    ({"returncode": 3, **RAN}, "crashed (exit code 3)"),
    ({"returncode": -signal.SIGSEGV, **RAN}, "killed by signal 11"),
    ({"returncode": -signal.SIGKILL, "cancelled": True, "malformed": "a cap", **RAN},
     "malformed result"),
])
def test_faults_of_the_students_code_are_runner_failures(evidence, reason):
    failure = launch.classify_failure("training run", evidence)
    assert reason in str(failure), failure
    assert isinstance(failure, GraderError) == ("still making progress" in reason)


def test_a_cache_that_is_not_the_graders_own_is_a_grader_error(tmp_path, grade_submission):
    foreign = tmp_path / "foreign-cache"
    foreign.mkdir()
    os.chown(foreign, 12345, 12345) if os.getuid() == 0 else foreign.chmod(0o000)
    planted = tmp_path / "planted"
    planted.mkdir()
    (tmp_path / "linked-cache").symlink_to(planted)
    for cache_dir in (foreign, tmp_path / "linked-cache"):
        with pytest.raises(GraderError, match="cache"):
            grade_submission(solution_sources(), cache_dir=cache_dir)


def test_a_cache_entry_is_used_only_if_intact_and_private(tmp_path):
    cache = MetricsCache(tmp_path / "cache")
    description = {"kind": "trained", "code": "abc"}
    cache.put(description, {"kid": 0.9})
    assert cache.get(description) == {"kid": 0.9}
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700
    (entry,) = (tmp_path / "cache").glob("trained-*.json")
    poisoned = json.loads(entry.read_text())
    poisoned["metrics"]["kid"] = 0.0  # a cheat's perfect score, without the matching hash
    entry.write_text(json.dumps(poisoned))
    assert cache.get(description) is None
    cache.put(description, {"kid": 0.9})
    target = tmp_path / "elsewhere.json"
    entry.rename(target)
    entry.symlink_to(target)  # never followed
    assert cache.get(description) is None


def test_records_are_written_over_a_planted_link_never_through_it(tmp_path):
    victim = tmp_path / "someone-elses-notebook.ipynb"
    victim.write_text("their work")
    (tmp_path / "verdicts.json").symlink_to(victim)
    write_record(tmp_path, "verdicts.json", {"test_denoise": "FAILED"})
    assert victim.read_text() == "their work"
    assert not (tmp_path / "verdicts.json").is_symlink()


def test_a_limit_hit_by_student_code_is_named_in_the_verdict(grade_submission):
    flood = "import sys\n\nfor _ in range(40):\n    sys.stderr.write('x' * 2**20)\n"
    verdicts = grade_submission({**solution_sources(), "denoise": flood})
    for cell in TEST_CELLS.values():
        message = verdicts[cell].message
        assert not verdicts[cell].passed
        assert re.search(r"output limit \S+ \S+ exceeded in the units run", message), message


def _judged(outcome):
    future = Future()
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
    return future


def test_external_verdict_records_verdicts_and_grader_errors_outside_the_sandbox(
        tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_COURSE_ROOT", str(tmp_path))
    notebook = honest_notebook(solution_sources())
    resources = {"nbgrader": {"student": "alice", "assignment": "ddim"},
                 "metadata": {"path": str(tmp_path / "autograded" / "alice" / "ddim")}}
    records = records_folder(tmp_path, "alice", "ddim")
    failed = Verdict(False, 0.0, "denoise: it used self.network")
    ExternalVerdict().preprocess(
        notebook, {**resources, JUDGING: _judged({"test_denoise": failed})})
    (denoise_test,) = [cell for cell in notebook.cells
                       if cell.metadata["nbgrader"]["grade_id"] == "test_denoise"]
    assert denoise_test.outputs[-1]["ename"] == "AutograderVerdict"
    assert json.loads((records / VERDICTS_FILE).read_text())["test_denoise"]["passed"] is False
    # a fault of the grader: recorded with its reason and raised, never turned into a verdict
    for error in (GraderError("the sandbox could not be set up"), KeyError("oops")):
        with pytest.raises(GraderError):
            ExternalVerdict().preprocess(notebook, {**resources,
                                                            JUDGING: _judged(error)})
        reason = json.loads((records / GRADER_ERROR_FILE).read_text())["reason"]
        assert str(error) in reason or "KeyError" in reason, reason


def test_the_judge_never_imports_tensorflow_datasets():
    """tfds's import swaps builtins.__import__ for every thread (etils lazy_imports). The judge is
    imported in a thread of the nbgrader process while nbgrader's main thread talks to the
    kernel, and one of nbgrader's relative imports then failed ("Relative import statements not
    supported"): the whole submission FAILED for a fault of the grader."""
    probe = ("import sys, autograder.judge, autograder.verdict; "
             "print('tensorflow_datasets' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"


# ---- the cells run as IPython ran them, with the release's names, once each -----------------


def nbgrader_sanitize_chain(skip=()):
    """nbgrader_config.py's sanitize preprocessors, read from the file nbgrader reads."""
    config = traitlets.config.Config()
    environment = dict(os.environ)  # the configuration sets nbgrader's variables: not ours
    try:
        path = REPO_ROOT / "nbgrader_config.py"
        exec(compile(path.read_text(), str(path), "exec"),
             {"get_config": lambda: config, "__file__": str(path)})
    finally:
        os.environ.clear()
        os.environ.update(environment)
    return [cls for cls in config.Autograde.sanitize_preprocessors if cls.__name__ not in skip]


@pytest.fixture(scope="module")
def nbgrader_sanitize(tmp_path_factory):
    """Runs nbgrader_config.py's sanitize preprocessors on a notebook, against a gradebook made
    from the instructor's notebook as `nbgrader generate_assignment` makes it: what `nbgrader
    autograde` does to a submission before it runs it, without running it."""
    db_url = f"sqlite:///{tmp_path_factory.mktemp('gradebook') / 'gradebook.db'}"
    with Gradebook(db_url, course_id="default_course") as gradebook:
        gradebook.update_or_create_assignment("ddim")
    resources = {"nbgrader": {"db_url": db_url, "assignment": "ddim", "notebook": "ddim"}}
    source = nbformat.read(REPO_ROOT / "solutions" / "ddim" / "ddim.ipynb", as_version=4)
    for preprocessor in (LockCells, ClearSolutions, ComputeChecksums, SaveCells):
        source, _ = preprocessor().preprocess(source, resources)

    def sanitize(notebook, skip=()):
        for preprocessor in nbgrader_sanitize_chain(skip):
            notebook, _ = preprocessor().preprocess(notebook, copy.deepcopy(resources))
        return notebook

    return sanitize


def test_nbgrader_alone_loses_a_submission_with_a_copied_answer_cell(nbgrader_sanitize):
    """jupyter/nbgrader#1083: DeduplicateIds empties the draft's metadata to {}, and the next
    preprocessors read its grade_id. NormaliseCells is what keeps the submission."""
    text = (sample_submissions.SUBMISSIONS / "honest-copied-cells" / "ddim.ipynb").read_text()
    with pytest.raises((KeyError, SchemaTooOldError)):
        nbgrader_sanitize(read_notebook_text(text), skip={"NormaliseCells"})
    notebook = nbgrader_sanitize(read_notebook_text(text))
    grade_ids = [cell.metadata.get("nbgrader", {}).get("grade_id") for cell in notebook.cells]
    # the final answer and the copied test cell keep their roles; the draft is the student's
    assert grade_ids.count("answer_denoise") == grade_ids.count("test_diffusion_schedule") == 1


HONEST_STYLES = ["honest-magics-and-shell-escapes", "honest-helper-uses-release-names",
                 "honest-copied-cells", "honest-split-cells-and-plots", "honest-colab",
                 "honest-vscode"]


@pytest.mark.parametrize("sample", HONEST_STYLES)
def test_every_honest_style_gets_full_marks(grade_submission, nbgrader_sanitize, sample):
    assert HONEST_STYLES == honest_styles.STYLES
    assert sample in sample_submissions.JUDGE_LEVEL_SAMPLES
    notebook = read_notebook_text(
        (sample_submissions.SUBMISSIONS / sample / sample_submissions.NOTEBOOK).read_text())
    if sample == "honest-copied-cells":  # its point is nbgrader's handling of the copies
        notebook = nbgrader_sanitize(notebook)
    verdicts = grade_submission(function_programs(notebook, FUNCTION_NAMES))
    for cell, verdict in verdicts.items():
        assert verdict.passed and verdict.score_fraction == 1.0, (cell, verdict.message)
    assert points(verdicts) == sample_submissions.EXPECTED_SCORES[sample]
    messages = "".join(verdict.message for verdict in verdicts.values())
    if sample == "honest-magics-and-shell-escapes":  # said once, not once per function
        assert messages.count("shell commands are not run by the grader") == 1


COUNTED_CELL = """%matplotlib inline
!echo this line is not run
%time SCALE = 1.0
with open("cell-runs.txt", "a") as runs:
    runs.write(f"{config.min_signal_rate} {SEED}\\n")
"""


def test_extra_cells_run_once_per_runner_with_the_releases_names(tmp_path):
    """The units and the training of one runner share one pass over the notebook's cells: the
    cell's counter file, read after the run, has one line, written with the release's config
    (in grading mode: the quick profile) and SEED."""
    notebook = honest_notebook(solution_sources())
    release = json.loads(sample_submissions.RELEASE.read_text())
    release_cells = [cell for cell in release["cells"] if cell["metadata"]["nbgrader"][
        "grade_id"] in ("hyperparameters",)]
    notebook.cells[1:1] = [nbformat.from_dict(cell) for cell in release_cells]
    notebook.cells.insert(2, _cell("code", COUNTED_CELL))
    programs = function_programs(notebook, FUNCTION_NAMES)
    config = DDIMConfig.from_profile("quick")
    request = {"config": config.to_dict(), "preamble": setup_source(), "programs": programs,
               "training": {"config": config.to_dict(), "programs": programs, "seed": 0,
                            "steps": 2, "num_train_images": 2 * config.batch_size,
                            "images_seed": 0}}
    run = launch.RunnerProcess(request, "units run", 300, tmp_path)
    try:
        units = run.wait_for("units")
        assert run.wait_for("training")["completed"] is True
    finally:
        run.cancel()
    assert not units["definition_errors"]
    notes = [note for name in FUNCTION_NAMES for note in units["notes"][name]]
    assert {note.get("remark") for note in notes} == {ipython_cells.SHELL_NOTE}, notes
    counter = next(tmp_path.glob("runner-*/work/cell-runs.txt")).read_text()
    assert counter == f"{config.min_signal_rate} 42\n"


# ---- the training verdict fails for real reasons --------------------------------------------

# a mistake that no probe sees (they compare values, and stop_gradient changes none): the
# network's output is cut from the loss, so the student's own functions train nothing
NO_GRADIENT_DENOISE = solution_sources()["denoise"].replace(
    "pred_noises = network([noisy_images, noise_rates**2], training=training)",
    "pred_noises = ops.stop_gradient(network([noisy_images, noise_rates**2], "
    "training=training))")


def measured_runs(cache_dir, steps):
    """The metrics of the reference trained `steps` steps and of the untrained model, measured
    as a grading measures them (a real sandboxed run), with the quick budget otherwise."""
    training_config, budget = training_setup(DDIMConfig.from_profile("quick"))
    with _Session(None) as session:
        evaluator = Evaluator(training_config, dataclasses.replace(budget, steps=steps), 0,
                              cache_dir)
        metrics = _TrainingRuns(session, evaluator).metrics(
            setup_source(), {name: as_program(name, source)
                             for name, source in solution_sources().items()}, "the reference")
        return metrics, evaluator.untrained_metrics()


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """The reference stopped after 5 of its steps, trained twice with cold caches."""
    return [measured_runs(tmp_path_factory.mktemp("cold-cache"), steps=5) for _ in range(2)]


def test_training_is_deterministic_from_cold_caches(stopped_run):
    (first, first_untrained), (second, second_untrained) = stopped_run
    assert first == second and first_untrained == second_untrained


def test_the_training_verdict_fails_an_untrained_model_and_a_stopped_run(grade_submission,
                                                                        stopped_run):
    _, budget = training_setup(DDIMConfig.from_profile("quick"))
    reference, untrained = measured_runs(grade_submission.cache_dir, budget.steps)
    stopped, _ = stopped_run[0]
    # independent of the code: a network that predicts ~0 has E|ε| = √(2/π) for ε ~ N(0, 1)
    assert untrained["noise_mae"] == pytest.approx(np.sqrt(2 / np.pi), abs=0.02)
    assert judge_training(reference, reference, untrained, budget, "the reference").passed
    for metrics in (untrained, stopped):
        verdict = judge_training(metrics, reference, untrained, budget, "your functions")
        assert not verdict.passed and verdict.score_fraction == 0.0
        assert "the noise MAE should be below" in verdict.message
        assert "the KID should be within" in verdict.message
    # stopped after 40 of its 150 steps: its noise MAE already passes (measured 0.42), its KID
    # (8.8 against the reference's 1.1) does not
    short, _ = measured_runs(grade_submission.cache_dir, steps=40)
    assert short["noise_mae"] < budget.max_noise_mae
    verdict = judge_training(short, reference, untrained, budget, "your functions")
    assert not verdict.passed and "the KID should be within" in verdict.message
    assert "the noise MAE should be below" not in verdict.message


def test_a_mistake_no_probe_sees_fails_the_training_of_the_students_own_functions(
        grade_submission):
    verdicts = grade_submission({**solution_sources(), "denoise": NO_GRADIENT_DENOISE})
    assert all(verdicts[cell].passed for cell in TEST_CELLS.values())  # so it trains them
    training = verdicts[TRAINING_TEST_CELL]
    assert not training.passed
    assert "training with your functions raised ValueError" in training.message
    assert "No gradients provided" in training.message


# rounds the times to 10 discrete steps, as DDPM's discrete timesteps would: it equals the
# reference on every tenth of the time axis, and its 150-step training run measured better than
# the reference's (KID 1.03 against 1.13, noise MAE 0.247 against 0.221), so the training
# verdict's margins let it through; only probe times between the tenths catch it
DISCRETE_SCHEDULE = solution_sources()["diffusion_schedule"].replace(
    'diffusion_times = ops.cast(diffusion_times, "float32")',
    'diffusion_times = ops.round(ops.cast(diffusion_times, "float32") * 10) / 10')


def test_a_schedule_right_only_on_the_tenths_fails_its_test(grade_submission):
    assert DISCRETE_SCHEDULE != solution_sources()["diffusion_schedule"]
    verdicts = grade_submission({**solution_sources(), "diffusion_schedule": DISCRETE_SCHEDULE})
    schedule = verdicts["test_diffusion_schedule"]
    assert not schedule.passed and "should follow the cosine schedule" in schedule.message
    assert verdicts["test_denoise"].passed and verdicts["test_reverse_diffusion"].passed
