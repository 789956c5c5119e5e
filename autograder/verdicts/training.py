"""test_training_kid: does the student's model train like the solution?

A short seeded training run with the student's functions (the solution's for any function
that failed its own test), then the noise MAE and the KID of generated images, measured in the
trusted process (`grader_state/evaluation.py`) and compared with the same run of the solution
code and with the untrained model.

Training budget (measured on this 2-core CPU, quick profile: 16 px images, widths (16, 32),
batch 16, learning rate 3e-3): 150 AdamW steps on 512 synthetic flowers
(`diffusion_course/synthetic.py`), EMA decay 0.9 because 0.999 would leave the EMA network at
its initialisation after so few steps; KID of 256 generated images (3 DDIM steps) against 256
held-out images. Over solution seeds 0-5 the KID (offline features) was 0.86 ± 0.045 (min 0.77,
max 0.91) and the noise MAE 0.281 ± 0.002; the untrained model's KID is about 22 and its MAE
0.797. Hence the pass rule: noise MAE < 0.5; KID within ±35% of the solution's run (about
±0.3, over 6 seed standard deviations: a correct solution written differently, with the same
seed, lands about 1% from it); and KID below a quarter of the untrained model's. A training run
takes about 11 s.

The full profile (64 px, the course's U-Net, batch 64) is for a GPU: 1,000 steps, EMA 0.99,
KID of 256 images against 256 (Inception features when their weights are in the Keras cache).
These numbers and its margins (copied from the quick profile) were NOT measured: no GPU was
available. Measure its seed-to-seed spread with `judge.measure_solution_spread` before using it.
"""

from dataclasses import dataclass

import numpy as np

from autograder import FUNCTION_NAMES
from autograder.verdicts.checks import Checks, Verdict

UNLEARNED_NOISE_MAE = float(np.sqrt(2.0 / np.pi))  # E|ε| for ε ~ N(0, 1): predicting zero


@dataclass(frozen=True)
class TrainingBudget:
    """How long the grader trains, what it measures, and what passes (see the docstring)."""

    steps: int
    ema: float
    num_train_images: int
    num_kid_images: int
    max_noise_mae: float
    kid_relative_margin: float  # |KID - solution KID| <= margin * solution KID
    max_fraction_of_untrained_kid: float
    timeout_s: int


TRAINING_BUDGETS = {
    "quick": TrainingBudget(steps=150, ema=0.9, num_train_images=512, num_kid_images=256,
                            max_noise_mae=0.5, kid_relative_margin=0.35,
                            max_fraction_of_untrained_kid=0.25, timeout_s=240),
    "full": TrainingBudget(steps=1000, ema=0.99, num_train_images=2048, num_kid_images=256,
                           max_noise_mae=0.5, kid_relative_margin=0.6,
                           max_fraction_of_untrained_kid=0.25, timeout_s=600),
}


def training_setup(config):
    """The training configuration and budget of a grading configuration's profile."""
    budget = TRAINING_BUDGETS[config.profile]
    # with only budget.steps steps, the course's EMA decay would leave the EMA network untrained
    return config.replace(ema=budget.ema), budget


def judge_training(student, solution, untrained, budget, used):
    """The pass rule of the module docstring, with every number in the message."""
    lowest_kid = (1.0 - budget.kid_relative_margin) * solution["kid"]
    highest_kid = (1.0 + budget.kid_relative_margin) * solution["kid"]
    untrained_limit = budget.max_fraction_of_untrained_kid * untrained["kid"]
    checks = Checks("training")
    checks.expect(student["noise_mae"] < budget.max_noise_mae,
                  f"after {budget.steps} steps the noise MAE should be below "
                  f"{budget.max_noise_mae} (the solution's run reaches "
                  f"{solution['noise_mae']:.3f}; a model that learned nothing stays at "
                  f"√(2/π) ≈ {UNLEARNED_NOISE_MAE:.3f}), got {student['noise_mae']:.3f}")
    checks.expect(lowest_kid <= student["kid"] <= highest_kid,
                  f"the KID should be within ±{budget.kid_relative_margin:.0%} of the solution "
                  f"run's {solution['kid']:.3f} (same seed, same data), i.e. in "
                  f"[{lowest_kid:.3f}, {highest_kid:.3f}], got {student['kid']:.3f}")
    checks.expect(student["kid"] < untrained_limit,
                  f"the KID should be below {budget.max_fraction_of_untrained_kid} × the "
                  f"untrained model's {untrained['kid']:.3f} = {untrained_limit:.3f}, got "
                  f"{student['kid']:.3f}")
    summary = (f"Trained {budget.steps} steps with {used}. Noise MAE {student['noise_mae']:.3f} "
               f"(solution {solution['noise_mae']:.3f}, untrained "
               f"{untrained['noise_mae']:.3f}); KID {student['kid']:.3f} (solution "
               f"{solution['kid']:.3f}, untrained {untrained['kid']:.3f}); "
               f"KID features: {student['features']}.")
    verdict = checks.verdict()
    if verdict.passed:
        return Verdict(True, 1.0, f"training: {summary}")
    # the cell is all or nothing: a model either trains like the solution or it does not
    return Verdict(False, 0.0, f"{verdict.message}\n{summary}")


def functions_used(passed):
    """Which functions were trained, e.g. "your denoise, with the solution ..."."""
    mine = [name for name in FUNCTION_NAMES if passed[name]]
    solution = [name for name in FUNCTION_NAMES if not passed[name]]
    used = f"your {_join(mine)}"
    if solution:
        used += (f", with the solution's {_join(solution)} (yours did not pass "
                 f"{'its test' if len(solution) == 1 else 'their tests'})")
    return used


def _join(names):
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
