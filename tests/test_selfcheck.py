"""The students' visible self-checks: the solution passes, each typical mistake is caught."""

import pytest

from autograder.mistakes import MISTAKES, mistaken_submission
from autograder.reference import REFERENCE_FUNCTIONS, define_functions, setup_source
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
            functions["reverse_diffusion"], REFERENCE_FUNCTIONS["diffusion_schedule"],
            REFERENCE_FUNCTIONS["denoise"], CONFIG),
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
    assert run_checks(REFERENCE_FUNCTIONS) == dict.fromkeys(REFERENCE_FUNCTIONS)


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_each_mistake_fails_its_own_self_check_only(name):
    functions = define_functions(mistaken_submission(name), setup_source())
    failures = run_checks(functions)
    mistaken = MISTAKES[name].function
    assert failures[mistaken] is not None, f"{name} passed the {mistaken} self-check"
    assert all(message is None for other, message in failures.items() if other != mistaken)


def test_a_slow_training_is_reported_with_the_unlearned_loss():
    history = type("History", (), {"history": {"n_loss": [0.80, 0.79]}})()
    with pytest.raises(selfcheck.SelfCheckError, match="0.798"):
        selfcheck.check_training(history)
