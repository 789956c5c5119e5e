"""test_reverse_diffusion: the DDIM loop step by step against the solution, with hints."""

import numpy as np

from autograder.runner import probe_values
from autograder.verdicts.checks import Checks, Unusable, close, largest_difference, returned, tensor


def _rates(call):
    """(noise_rates, signal_rates) of a logged call as one value per image."""
    return [np.broadcast_to(np.asarray(call[name], np.float64),
                            (probe_values.NUM_SAMPLER_IMAGES, 1, 1, 1)).ravel()
            for name in ("noise_rates", "signal_rates")]


def _denoised(clean_image, call):
    """What the probe denoise returned for a logged call: (pred_noises, pred_images); the
    oracle's when `clean_image` is given, else the affine stand-ins'."""
    return [value.astype(np.float64) for value in probe_values.probe_denoised(
        *(call[name] for name in ("noisy_images", "noise_rates", "signal_rates")),
        training=call["training"], clean_image=clean_image)]


def _remix(rates, denoised):
    """x' = s'·x̂0 + n'·ε̂ (DDIM eq. 12 with σ = 0) at the given (noise, signal) rates."""
    (noise_rates, signal_rates), (pred_noises, pred_images) = rates, denoised
    return (signal_rates.reshape(-1, 1, 1, 1) * pred_images
            + noise_rates.reshape(-1, 1, 1, 1) * pred_noises)


def _format_time(time):
    return f"{round(float(time), 3) + 0.0:.3f}"  # + 0.0 turns -0.0 into 0.0


def _step_inputs_problem(calls, expected_calls, clean_image, steps):
    """The first step whose denoise inputs are wrong, explained; None if there is none.

    Each step is judged against the student's own previous step (the probe denoise is
    deterministic), so one mistake is reported where it happens, not at every later step.
    """
    for step, (call, expected) in enumerate(zip(calls, expected_calls)):
        where = f"at step {step + 1} of {steps}"
        try:
            noise_rates, signal_rates = _rates(call)
        except ValueError:
            return (f"{where}, denoise got noise_rates of shape {np.shape(call['noise_rates'])}"
                    f": expected one rate per image, shaped "
                    f"({probe_values.NUM_SAMPLER_IMAGES}, 1, 1, 1)")
        expected_rates = _rates(expected)
        if not (close(noise_rates, expected_rates[0], 1e-4)
                and close(signal_rates, expected_rates[1], 1e-4)):
            with np.errstate(all="ignore"):
                time = probe_values.probe_times(noise_rates, signal_rates)[0]
            expected_time = probe_values.probe_times(*expected_rates)[0]
            hint = ""
            if abs(abs(time - expected_time) - 1.0 / steps) < 1e-3:
                hint = " (is diffusion_times off by one step?)"
            return (f"{where}, denoise should be called at diffusion time "
                    f"{_format_time(expected_time)} = 1 - {step} * step_size, with the "
                    f"schedule's rates for that time; the rates it got belong to "
                    f"t={_format_time(time)}{hint}")
        noisy_images = np.asarray(call["noisy_images"], np.float64)
        if step == 0:
            expected_images = np.asarray(expected["noisy_images"], np.float64)
            if not close(noisy_images, expected_images, 1e-4):
                return (f"{where}, denoise should get the initial noise itself (at t=1 the "
                        f"noisy image is pure noise); it got images that differ from it by up "
                        f"to {largest_difference(noisy_images, expected_images):.3g}")
            continue
        previous = calls[step - 1]
        denoised = _denoised(clean_image, previous)
        remixed = _remix(expected_rates, denoised)
        if close(noisy_images, remixed, 1e-4):
            continue
        hint = ""
        if close(noisy_images, _remix(_rates(previous), denoised), 1e-4):
            hint = (": they are remixed at the previous step's rates. Remix at the next, "
                    "lower noise level: next_signal_rates * pred_images + next_noise_rates * "
                    "pred_noises")
        elif close(noisy_images, denoised[1], 1e-4):
            hint = ": they are the previous pred_images, not remixed with the predicted noise"
        return (f"{where}, denoise should get the previous step's pred_images and pred_noises "
                f"remixed at this step's rates (DDIM eq. 12 with σ=0); the noisy images differ "
                f"from that by up to {largest_difference(noisy_images, remixed):.3g}{hint}")
    return None


def _final_output_hint(final, calls, clean_image, steps):
    """Why the returned images are not the last pred_images, when a known mistake explains it."""
    if not calls:
        return ""
    last = calls[-1]
    if close(final, np.asarray(last["noisy_images"], np.float64), 1e-4):
        return (" (it is the last noisy input of denoise: return the last pred_images, the "
                "prediction of the clean images)")
    noise_rates, signal_rates = _rates(last)
    times = probe_values.probe_times(noise_rates, signal_rates)
    next_rates = [rates.astype(np.float64).ravel() for rates in
                  probe_values.probe_rates((times - 1.0 / steps).reshape(-1, 1, 1, 1))]
    if close(final, _remix(next_rates, _denoised(clean_image, last)), 1e-4):
        return (" (it is the last remix, next_noisy_images: return pred_images, the "
                "prediction of the clean images)")
    return ""


def judge_reverse_diffusion(outcome, solution, config):
    checks = Checks("reverse_diffusion")
    image_shape = (probe_values.NUM_SAMPLER_IMAGES, config.image_size, config.image_size, 3)
    runs = probe_values.sampler_runs()
    unusable = []
    for name, (steps, oracle) in runs.items():
        record, expected = outcome.get(name), solution[name]
        call = f"reverse_diffusion(initial_noise, diffusion_steps={steps})"
        if oracle:
            call += " with the oracle network"
        try:
            final = tensor(returned(record, call), f"the value returned by {call}")
        except Unusable as problem:
            unusable.append(str(problem))
            checks.expect(False, str(problem))
            continue
        calls = record["calls"]
        clean_image = probe_values.probe_inputs(config)["clean_image"] if oracle else None
        hint = _final_output_hint(final, calls, clean_image, steps)
        if oracle:
            checks.expect(close(final, clean_image, 1e-4),
                          f"{call}: with a network that knows the clean image, the sampler "
                          f"should return exactly that image; the largest difference is "
                          f"{largest_difference(final, clean_image):.3g}{hint}")
            continue
        checks.expect(final.shape == image_shape,
                      f"{call} should return images shaped like the initial noise "
                      f"{image_shape}, got {final.shape}")
        extra = len(calls) - steps
        checks.expect(extra == 0,
                      f"{call} should call denoise once per step, {steps} times; it called it "
                      f"{len(calls)} times" + (" (one step too many or too few?)"
                                               if abs(extra) == 1 else ""))
        training_flags = sorted({bool(logged["training"]) for logged in calls})
        checks.expect(training_flags in ([], [False]),
                      f"{call} should call denoise with training=False, so that the EMA "
                      f"network samples; it passed training={training_flags}")
        problem = _step_inputs_problem(calls, expected["calls"], clean_image, steps)
        checks.expect(problem is None, f"{call}: {problem}")
        checks.expect(close(final, expected["final"], 1e-4),
                      f"{call} should return the last step's pred_images; its result differs "
                      f"from the solution's by up to "
                      f"{largest_difference(final, expected['final']):.3g}{hint}")
    if len(unusable) == len(runs):
        raise Unusable(unusable[0])
    return checks.verdict()
