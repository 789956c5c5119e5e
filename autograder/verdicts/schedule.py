"""test_diffusion_schedule: the variant's schedule, judged from the runner's records."""

import numpy as np

from autograder.runner import probe_values
from autograder.verdicts.checks import Checks, Unusable, close, largest_difference, pair, rounded
from diffusion_course.variants import FAMILIES


def judge_schedule(outcome, solution, config):
    checks = Checks("diffusion_schedule")
    times = probe_values.SCHEDULE_TIMES.ravel()
    names = ("noise_rates", "signal_rates")
    (noise_rates, noise_dtype), (signal_rates, signal_dtype) = pair(
        outcome["course"]["eager"], "diffusion_schedule", names)
    expected_shape = probe_values.SCHEDULE_TIMES.shape
    checks.expect(noise_rates.shape == expected_shape == signal_rates.shape,
                  f"for diffusion_times of shape {expected_shape}, both rates should have that "
                  f"shape, so that they broadcast over a batch of images; got "
                  f"{noise_rates.shape} and {signal_rates.shape}")
    checks.expect(noise_dtype == "float32" == signal_dtype,
                  f"the rates should be float32 like the images, got {noise_dtype} and "
                  f"{signal_dtype} (compute them with keras.ops from the float32 times, or "
                  f"cast them with ops.cast(..., \"float32\"))")
    if noise_rates.size != times.size or signal_rates.size != times.size:
        raise Unusable(f"diffusion_schedule returned {noise_rates.size} and "
                        f"{signal_rates.size} rates for {times.size} diffusion times")
    noise_rates, signal_rates = noise_rates.ravel(), signal_rates.ravel()

    total_power = noise_rates**2 + signal_rates**2
    checks.expect(np.allclose(total_power, 1.0, atol=1e-5),
                  f"noise_rate² + signal_rate² should be 1 at every time (the noisy images keep "
                  f"unit variance), got values from {total_power.min():.4f} to "
                  f"{total_power.max():.4f}")
    _check_endpoint(checks, signal_rates[0], "t=0", "max_signal_rate", config.max_signal_rate,
                    config)
    _check_endpoint(checks, signal_rates[-1], "t=1", "min_signal_rate", config.min_signal_rate,
                    config)
    checks.expect(np.all(np.diff(signal_rates) < 0) and np.all(np.diff(noise_rates) > 0),
                  f"as t grows from 0 to 1 the signal rate should fall and the noise rate rise; "
                  f"got signal rates {rounded(signal_rates, 3)}")
    expected_noise, expected_signal = (rates.ravel() for rates in solution["course"])
    worst = int(np.argmax(np.abs(signal_rates - expected_signal)
                          + np.abs(noise_rates - expected_noise)))
    checks.expect(close(noise_rates, expected_noise) and close(signal_rates, expected_signal),
                  f"the rates should follow the {FAMILIES[config.schedule].title} schedule "
                  f"(this term's: {FAMILIES[config.schedule].linear_quantity} linear in t) "
                  f"between the two bounds; at "
                  f"t={times[worst]:.3g} expected noise_rate {expected_noise[worst]:.4f} and "
                  f"signal_rate {expected_signal[worst]:.4f}, got {noise_rates[worst]:.4f} and "
                  f"{signal_rates[worst]:.4f}")
    checks.expect(*_other_bounds_check(outcome["other"]["eager"], solution["other"],
                                       signal_rates))
    checks.expect(*_compiled_check(outcome["course"]["compiled"], noise_rates, signal_rates))
    return checks.verdict()


def _check_endpoint(checks, signal_rate, where, bound_name, bound, config):
    hint = ""
    if abs(signal_rate - np.sqrt(1.0 - bound**2)) < 1e-3:
        hint = (" (are sin and cos swapped, or the pair returned as (signal_rates, "
                "noise_rates)? It is (noise_rates, signal_rates))")
    elif abs(signal_rate - (config.min_signal_rate + config.max_signal_rate - bound)) < 1e-3:
        hint = " (does time run backwards? t=0 is the clean end, at max_signal_rate)"
    checks.expect(abs(signal_rate - bound) < 1e-5,
                  f"signal_rate at {where} should be {bound_name}={bound}, got "
                  f"{signal_rate:.4f}{hint}")


def _other_bounds_check(record, expected_rates, course_signal_rates):
    bounds = probe_values.OTHER_SIGNAL_RATE_BOUNDS
    setting = ", ".join(f"{name}={value}" for name, value in bounds.items())
    try:
        (noise_rates, _), (signal_rates, _) = pair(record, f"diffusion_schedule with {setting}",
                                                    ("noise_rates", "signal_rates"))
    except Unusable as problem:
        return False, str(problem)
    expected_noise, expected_signal = expected_rates
    hint = ""
    if close(signal_rates.ravel(), course_signal_rates):
        hint = (": it gave the same rates as with the course's bounds. Read the bounds from "
                "self.config instead of writing them into the code")
    return (close(noise_rates, expected_noise) and close(signal_rates, expected_signal),
            f"with {setting} in self.config, signal_rate should run from "
            f"{bounds['max_signal_rate']} to {bounds['min_signal_rate']} along the same "
            f"schedule, got {signal_rates.ravel()[0]:.4f} to {signal_rates.ravel()[-1]:.4f}, up "
            f"to {largest_difference(signal_rates, expected_signal):.3g} from the expected "
            f"signal rates{hint}")


def _compiled_check(record, noise_rates, signal_rates):
    """Inside tf.function, as in the train step, the values must be the eager ones."""
    try:
        (compiled_noise, _), (compiled_signal, _) = pair(
            record, "diffusion_schedule inside tf.function", ("noise_rates", "signal_rates"))
    except Unusable as problem:
        return False, (f"it works eagerly but not when traced into a graph, as the train step "
                       f"does: {problem}. Use keras.ops on tensors, not numpy or .numpy()")
    return (close(compiled_noise.ravel(), noise_rates)
            and close(compiled_signal.ravel(), signal_rates),
            "inside tf.function it returned other values than eagerly: up to "
            f"{largest_difference(compiled_signal.ravel(), signal_rates):.3g} apart")
