"""The students' visible self-checks: the solution passes, each typical mistake is caught."""

import pytest

from autograder.assignment.solution import SOLUTION_FUNCTIONS, define_functions, setup_source
from autograder.samples.mistakes import MISTAKES, mistaken_submission
from diffusion_course import selfcheck
from diffusion_course.config import DDIMConfig

CONFIG = DDIMConfig.from_profile("quick")


def run_checks(functions):
    """{function name: None if its self-check passed, else the failure message}."""
    checks = {
        "diffusion_schedule": lambda: selfcheck.check_diffusion_schedule(
            functions["diffusion_schedule"], CONFIG),
        "denoise": lambda: selfcheck.check_denoise(functions["denoise"], CONFIG),
        # the sampler's check uses the reference for the other two, as the grader does
        "reverse_diffusion": lambda: selfcheck.check_reverse_diffusion(
            functions["reverse_diffusion"], SOLUTION_FUNCTIONS["diffusion_schedule"],
            SOLUTION_FUNCTIONS["denoise"], CONFIG),
    }
    failures = {}
    for name, check in checks.items():
        try:
            check()
            failures[name] = None
        except selfcheck.SelfCheckError as error:
            failures[name] = str(error)
    return failures


def test_the_solution_passes_every_self_check():
    assert run_checks(SOLUTION_FUNCTIONS) == dict.fromkeys(SOLUTION_FUNCTIONS)


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_each_mistake_fails_its_own_self_check_only(name):
    functions = define_functions(mistaken_submission(name), setup_source())
    failures = run_checks(functions)
    mistaken = MISTAKES[name].function
    assert failures[mistaken] is not None, f"{name} passed the {mistaken} self-check"
    assert all(message is None for other, message in failures.items() if other != mistaken)


def history_of(noise_maes):
    return type("History", (), {"history": {"n_loss": noise_maes}})()


def test_a_slow_training_is_reported_with_the_unlearned_loss():
    with pytest.raises(selfcheck.SelfCheckError, match="0.798"):
        selfcheck.check_training(history_of([0.80, 0.79]),
                                 SOLUTION_FUNCTIONS["diffusion_schedule"],
                                 SOLUTION_FUNCTIONS["denoise"], CONFIG)


UPSTREAM_MISTAKES = sorted(name for name, mistake in MISTAKES.items()
                           if mistake.function in ("diffusion_schedule", "denoise"))


@pytest.mark.parametrize("name", UPSTREAM_MISTAKES)
def test_a_correct_sampler_blames_the_mistaken_function_it_calls(name):
    functions = define_functions(mistaken_submission(name), setup_source())
    culprit = MISTAKES[name].function
    with pytest.raises(selfcheck.SelfCheckError,
                       match=f"your {culprit} fails its self-check; fix it first"):
        selfcheck.check_reverse_diffusion(SOLUTION_FUNCTIONS["reverse_diffusion"],
                                          functions["diffusion_schedule"], functions["denoise"],
                                          CONFIG)


def test_the_training_check_catches_a_swapped_schedule_whose_loss_fell():
    history = history_of([0.45, 0.30])  # what a run with sin and cos swapped reaches
    swapped = define_functions(mistaken_submission("schedule_sin_cos_swapped"), setup_source())
    with pytest.raises(selfcheck.SelfCheckError,
                       match="your diffusion_schedule fails its self-check; fix it first"):
        selfcheck.check_training(history, swapped["diffusion_schedule"], swapped["denoise"],
                                 CONFIG)
    assert "fell from 0.450 to 0.300" in selfcheck.check_training(
        history, SOLUTION_FUNCTIONS["diffusion_schedule"], SOLUTION_FUNCTIONS["denoise"], CONFIG)
