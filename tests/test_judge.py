"""The trusted grader: the reference passes, each typical mistake fails its own test only, and a
fault of the grader is never the student's zero.

Every grading runs the real student runner in sandboxed subprocesses and a real (short)
training run; the reference run and the untrained model are measured once, in a cache shared
by the whole module. Submissions whose failed functions are replaced by the reference's train
exactly the reference, so their training verdict reuses that run.
"""

import ast
import io
import json
import os
import re
import signal
import struct
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
from judging import (
    ALL_CELLS,
    honest_notebook,
    imported_after,
    points,
    sample_programs,
)

import diffusion_course
from autograder import GRADER_ERROR_FILE, VERDICTS_FILE, records_folder
from autograder.assignment.forbidden_imports import (
    FORBIDDEN_MODULES,
    forbidden_imports,
    forbidden_paths,
)
from autograder.assignment.solution import setup_source, solution_sources
from autograder.errors import GraderError
from autograder.grader_state.cache import MetricsCache
from autograder.nbgrader_steps.verdict_cells import JUDGING, ExternalVerdict, write_record
from autograder.runner import launch, probes
from autograder.runner.channel import ArrayStore, MalformedMessage, read_message, write_message
from autograder.samples import catalogue
from autograder.samples.mistakes import (
    FUNCTION_NAMES,
    MISTAKES,
    unanswered_submission,
)
from autograder.verdicts import TEST_CELLS, TRAINING_TEST_CELL, judge_units
from autograder.verdicts.checks import Verdict
from autograder.verdicts.solution_outputs import solution_outputs
from diffusion_course.config import DDIMConfig

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



def test_the_solution_passes_every_test(grade_submission):
    verdicts = grade_submission(solution_sources())
    assert set(verdicts) == set(ALL_CELLS)
    for cell, verdict in verdicts.items():
        assert verdict.passed and verdict.score_fraction == 1.0, (cell, verdict.message)
    # the same code and seed as the solution run: the very same numbers
    kid, solution_kid = re.search(r"KID ([0-9.]+) \(solution ([0-9.]+)",
                                   verdicts[TRAINING_TEST_CELL].message).groups()
    assert kid == solution_kid

# Every typical mistake, from its committed sample submission: the end-to-end test leaves these
# samples to this module (catalogue.JUDGE_LEVEL_SAMPLES), so the grade here is the one
# the README's table promises.
@pytest.mark.parametrize("mistake_name", sorted(MISTAKES))
def test_a_typical_mistake_fails_only_its_own_test(grade_submission, mistake_name):
    mistake = MISTAKES[mistake_name]
    sample = f"mistake-{mistake_name.replace('_', '-')}"
    assert sample in catalogue.JUDGE_LEVEL_SAMPLES
    verdicts = grade_submission(sample_programs(sample))
    failed_cell = TEST_CELLS[mistake.function]
    failed = verdicts[failed_cell]
    assert not failed.passed
    assert 0.0 <= failed.score_fraction < 1.0
    assert EXPECTED_HINTS[mistake_name] in failed.message, failed.message
    for cell in ALL_CELLS:
        if cell != failed_cell:
            assert verdicts[cell].passed, (cell, verdicts[cell].message)
    # the training run replaced the failed function by the solution's
    assert f"the solution's {mistake.function}" in verdicts[TRAINING_TEST_CELL].message
    assert points(verdicts) == catalogue.EXPECTED_SCORES[sample]


def test_an_unanswered_function_fails_its_test_and_trains_with_the_solutions(grade_submission):
    verdicts = grade_submission(unanswered_submission("denoise"))
    assert not verdicts["test_denoise"].passed
    assert verdicts["test_denoise"].score_fraction == 0.0
    assert "NotImplementedError" in verdicts["test_denoise"].message
    assert verdicts["test_diffusion_schedule"].passed
    assert verdicts["test_reverse_diffusion"].passed
    training = verdicts[TRAINING_TEST_CELL]
    assert training.passed and "the solution's denoise" in training.message


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


def test_an_endless_loop_is_stopped_and_costs_its_own_function_only(monkeypatch, tmp_path):
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
    verdicts = judge_units(read_message(stream, 2**26), config,
                           solution_outputs(config, tmp_path / "cache"))
    assert "were stopped (an endless loop?)" in verdicts["denoise"].message, verdicts["denoise"]
    assert verdicts["diffusion_schedule"].passed and verdicts["reverse_diffusion"].passed


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
    assert imported_after("import autograder.judge, autograder.nbgrader_steps.verdict_cells",
                          {"tensorflow_datasets"}) == []


def test_loading_the_grading_configuration_starts_no_tensorflow():
    """nbgrader loads nbgrader_config.py in every grading process, and so does the similarity
    report: a TensorFlow import there (about 5 s of CPU) would be paid once more per student."""
    assert imported_after("from autograder.similarity.report import load_settings; "
                          "load_settings()", {"tensorflow", "keras"}) == []

