"""The trusted grader: the reference passes, each typical mistake fails its own test only.

Every grading runs the real student runner in subprocesses and a real (short) training run; the
reference run and the untrained model are measured once, in a cache shared by the whole module.
Submissions whose failed functions are replaced by the reference's train exactly the reference,
so their training verdict reuses that run.
"""

import json
import re

import pytest

from autograder import student_runner
from autograder.judge import TEST_CELLS, TRAINING_TEST_CELL, grade, judge_units, load_runner_result
from autograder.mistakes import (
    FUNCTION_NAMES,
    MISTAKES,
    mistaken_submission,
    unanswered_submission,
)
from autograder.reference import setup_source, solution_sources
from diffusion_course.config import DDIMConfig

ALL_CELLS = (*TEST_CELLS.values(), TRAINING_TEST_CELL)

# a correct solution written differently from the reference: other ops, other order of
# operations, another time grid; it must pass, and its training must land near the reference's
EQUIVALENT_SOLUTION = {
    "diffusion_schedule": """import math


def diffusion_schedule(self, diffusion_times):
    start_angle = math.acos(self.config.max_signal_rate)
    end_angle = math.acos(self.config.min_signal_rate)
    angles = start_angle + diffusion_times * (end_angle - start_angle)
    return ops.sin(angles), ops.cos(angles)
""",
    "denoise": """def denoise(self, noisy_images, noise_rates, signal_rates, training):
    if training:
        pred_noises = self.network([noisy_images, ops.square(noise_rates)], training=True)
    else:
        pred_noises = self.ema_network([noisy_images, ops.square(noise_rates)], training=False)
    pred_images = noisy_images / signal_rates - (noise_rates / signal_rates) * pred_noises
    return pred_noises, pred_images
""",
    "reverse_diffusion": """def reverse_diffusion(self, initial_noise, diffusion_steps):
    num_images = ops.shape(initial_noise)[0]
    noisy_images = initial_noise
    for step in range(diffusion_steps):
        times = ops.full((num_images, 1, 1, 1), 1.0 - step / diffusion_steps)
        noise_rates, signal_rates = self.diffusion_schedule(times)
        pred_noises, pred_images = self.denoise(noisy_images, noise_rates, signal_rates, False)
        next_noise_rates, next_signal_rates = self.diffusion_schedule(times - 1 / diffusion_steps)
        noisy_images = next_signal_rates * pred_images + next_noise_rates * pred_noises
    return pred_images
""",
}

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
        return grade(functions, setup_source(), config=config, cache_dir=cache_dir, **options)

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


def test_an_equivalent_solution_written_differently_passes(grade_submission):
    verdicts = grade_submission(EQUIVALENT_SOLUTION)
    for cell, verdict in verdicts.items():
        assert verdict.passed, (cell, verdict.message)


# one mistake per kind of check here; the end-to-end test (tests/test_autograder.py) grades
# every mistake in MISTAKES through nbgrader
@pytest.mark.parametrize("mistake_name", ["schedule_sin_cos_swapped",
                                          "sampler_remixes_at_current_rates"])
def test_a_typical_mistake_fails_only_its_own_test(grade_submission, mistake_name):
    mistake = MISTAKES[mistake_name]
    verdicts = grade_submission(mistaken_submission(mistake_name))
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


def test_a_runner_that_runs_too_long_is_stopped(grade_submission):
    verdicts = grade_submission(solution_sources(), timeout=2)
    for cell in TEST_CELLS.values():
        assert "did not finish within 2 s" in verdicts[cell].message, verdicts[cell].message


def test_an_endless_loop_is_stopped_and_costs_its_own_function_only(tmp_path, monkeypatch):
    """The runner's per-function time limit, here 5 s instead of 30 s."""
    monkeypatch.setattr(student_runner, "FUNCTION_TIME_LIMIT_S", 5)
    config = DDIMConfig.from_profile("quick")
    looping_denoise = "def denoise(self, *args, **kwargs):\n    while True:\n        pass\n"
    request = {"task": "units", "preamble": setup_source(), "config": config.to_dict(),
               "functions": {**solution_sources(), "denoise": looping_denoise}}
    (tmp_path / "request.json").write_text(json.dumps(request))
    student_runner.main(tmp_path / "request.json", tmp_path / "result")
    verdicts = judge_units(load_runner_result(tmp_path / "result"), config)
    assert "were stopped (an endless loop?)" in verdicts["denoise"].message
    assert verdicts["diffusion_schedule"].passed and verdicts["reverse_diffusion"].passed
