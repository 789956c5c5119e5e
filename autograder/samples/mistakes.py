"""The typical mistakes in the DDIM assignment, as submissions the grader must fail.

Each mistake is the solution notebook's source with one or two lines changed, so there is one
copy of the solution (`autograder.assignment.solution`) and every mistake stays one edit away from
it. The
tests grade each one (only its own function's test may fail), and the sample-submission builder
can write them into notebooks.

    submission = mistaken_submission("denoise_gets_noise_rate")   # {function name: source}
"""

from dataclasses import dataclass

from autograder.assignment.solution import FUNCTION_NAMES, solution_sources


@dataclass(frozen=True)
class Mistake:
    function: str  # the function the mistake is in: only its test may fail
    description: str
    edits: tuple  # (solution text, mistaken text) pairs, each found exactly once


MISTAKES = {
    "schedule_sin_cos_swapped": Mistake(
        "diffusion_schedule", "sin and cos swapped in the schedule",
        (("signal_rates = ops.cos(diffusion_angles)", "signal_rates = ops.sin(diffusion_angles)"),
         ("noise_rates = ops.sin(diffusion_angles)", "noise_rates = ops.cos(diffusion_angles)"))),
    "denoise_gets_noise_rate": Mistake(
        "denoise", "the network is fed noise_rates instead of the variances noise_rates**2",
        (("[noisy_images, noise_rates**2]", "[noisy_images, noise_rates]"),)),
    "denoise_always_uses_training_network": Mistake(
        "denoise", "the training network is used at inference instead of the EMA network",
        (("network = self.network if training else self.ema_network",
          "network = self.network"),)),
    "sampler_denoises_with_training_network": Mistake(
        "reverse_diffusion", "the sampler calls denoise with training=True",
        (("noisy_images, noise_rates, signal_rates, training=False)",
          "noisy_images, noise_rates, signal_rates, training=True)"),)),
    "sampler_remixes_at_current_rates": Mistake(
        "reverse_diffusion", "the remix uses the current rates instead of the next ones",
        (("next_noisy_images = next_signal_rates * pred_images + next_noise_rates * pred_noises",
          "next_noisy_images = signal_rates * pred_images + noise_rates * pred_noises"),)),
    "sampler_returns_noisy_images": Mistake(
        "reverse_diffusion", "the sampler returns the noisy images instead of the predictions",
        (("return pred_images", "return next_noisy_images"),)),
    "sampler_step_off_by_one": Mistake(
        "reverse_diffusion", "diffusion_times = 1 - (step + 1) * step_size, one step off",
        (("- step * step_size", "- (step + 1) * step_size"),)),
}


def _apply(source, edits, name):
    for solution_text, mistaken_text in edits:
        count = source.count(solution_text)
        if count != 1:
            raise ValueError(
                f"Mistake {name!r} expects {solution_text!r} exactly once in the solution's "
                f"source, found it {count} times. The solution notebook changed: update the "
                f"edit in autograder/samples/mistakes.py."
            )
        source = source.replace(solution_text, mistaken_text)
    return source


def unanswered(function_name):
    """The function as released to students: its signature, then NotImplementedError."""
    signature = solution_sources()[function_name].splitlines()[0]
    return f"{signature}\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"


def mistaken_submission(name):
    """{function name: source}: the solution with mistake `name` in one function."""
    mistake = MISTAKES[name]
    sources = dict(solution_sources())
    sources[mistake.function] = _apply(sources[mistake.function], mistake.edits, name)
    return sources


def unanswered_submission(*function_names):
    """The solution with the given functions left as released (NotImplementedError)."""
    sources = dict(solution_sources())
    for function_name in function_names:
        if function_name not in FUNCTION_NAMES:
            raise ValueError(f"{function_name!r} is not one of {FUNCTION_NAMES}.")
        sources[function_name] = unanswered(function_name)
    return sources
