"""test_denoise: which network ran, which noise level it got, and the image it gives back.

The network predicts what the configuration's variant says (`config.prediction`): the noise,
the image or the velocity; the checks and their messages follow it.
"""

import numpy as np

from autograder.runner import probe_values
from autograder.verdicts.checks import Checks, Unusable, close, largest_difference, pair, rounded

# the network's output, from the returned pair (ε̂, x̂0) at rates (n, s); v = s·ε − n·x0
NETWORK_OUTPUTS = {
    "noise": ("its pred_noises are", lambda pred_noises, pred_images, n, s: pred_noises),
    "image": ("its pred_images are", lambda pred_noises, pred_images, n, s: pred_images),
    "velocity": ("the velocity that its pair implies, signal_rates * pred_noises - noise_rates "
                 "* pred_images, is",
                 lambda pred_noises, pred_images, n, s: s * pred_noises - n * pred_images),
}
TARGET_NAMES = {"noise": "the noise", "image": "the clean images", "velocity": "the velocity"}


def _network_that_ran(network_outputs, noisy_images):
    """Which affine stand-in produced the network outputs, and the noise levels it was given."""
    networks = {"self.network": probe_values.TRAINING_NETWORK_GAINS,
                "self.ema_network": probe_values.EMA_NETWORK_GAINS}
    for name, (image_gain, variance_gain) in networks.items():
        residual = network_outputs - image_gain * noisy_images
        if residual.shape == noisy_images.shape and np.all(
                residual.std(axis=(1, 2, 3)) < 1e-4 * (1.0 + np.abs(residual).max())):
            return name, residual.mean(axis=(1, 2, 3)) / variance_gain
    return None, None


def _received_noise_levels(received, noise_rates, signal_rates):
    """What the network received, named when it is one of the usual wrong choices."""
    if received is None:
        return "but which noise level it received cannot be told"
    for description, values in (("noise_rates", noise_rates), ("signal_rates", signal_rates),
                                ("signal_rates**2", signal_rates**2)):
        if close(received, values, 1e-4):
            return f"got {rounded(received)} (that is {description})"
    return f"got {rounded(received)}"


def _identity_check(prediction, pred_noises, pred_images, noisy_images, noise_rates,
                    signal_rates):
    """(passed, message): the returned pair against the target's identity (see variants.py)."""
    if prediction == "image":
        # ε̂ = (x − s·x̂0) / n, from the student's own x̂0
        consistent = (noisy_images - signal_rates * pred_images) / noise_rates
        returned, formula = pred_noises, ("pred_noises should be (noisy_images - signal_rates * "
                                          "pred_images) / noise_rates, the forward mix solved "
                                          "for the noise")
    elif prediction == "velocity":
        # x̂0 = s·x − n·v̂ and ε̂ = n·x + s·v̂ remix to x = s·x̂0 + n·ε̂, as s² + n² = 1
        consistent = signal_rates * pred_images + noise_rates * pred_noises
        returned, formula = noisy_images, ("pred_images should be signal_rates * noisy_images - "
                                           "noise_rates * pred_velocities and pred_noises "
                                           "should be noise_rates * noisy_images + signal_rates * "
                                           "pred_velocities, so that they remix to the noisy "
                                           "images")
    else:
        # x̂0 = (x − n·ε̂) / s, from the student's own ε̂: right even if the network call is wrong
        consistent = (noisy_images - noise_rates * pred_noises) / signal_rates
        returned, formula = pred_images, ("pred_images should be (noisy_images - noise_rates * "
                                          "pred_noises) / signal_rates, the forward mix solved "
                                          "for the image")
    return (close(returned, consistent, 1e-4),
            f"{formula}; they differ by up to {largest_difference(returned, consistent):.3g}")


def judge_denoise(outcome, solution, config):
    checks = Checks("denoise")
    output_name, network_output = NETWORK_OUTPUTS[config.prediction]
    target = TARGET_NAMES[config.prediction]
    inputs = probe_values.probe_inputs(config)
    noisy_images = inputs["noisy_images"].astype(np.float64)
    noise_rates, signal_rates = (inputs[name].astype(np.float64)
                                 for name in ("noise_rates", "signal_rates"))
    names = ("pred_noises", "pred_images")
    outputs = {}
    for training, expected_network in ((True, "self.network"), (False, "self.ema_network")):
        call = f"denoise(..., training={training})"
        (pred_noises, _), (pred_images, _) = outputs[training] = pair(
            outcome[f"affine_training_{training}"], call, names)
        checks.expect(pred_noises.shape == noisy_images.shape == pred_images.shape,
                      f"{call} should return two tensors shaped like the noisy images "
                      f"{noisy_images.shape}, got {pred_noises.shape} and {pred_images.shape}")
        network, received = _network_that_ran(
            network_output(pred_noises, pred_images, noise_rates, signal_rates), noisy_images)
        reason = ("the network being trained" if training
                  else "sampling and evaluation use the EMA weights")
        checks.expect(network == expected_network,
                      f"{call} should predict {target} with {expected_network} ({reason}); "
                      + (f"{output_name} the output of neither network on the noisy images"
                         if network is None else f"it used {network}"))
        expected_variances = noise_rates.ravel() ** 2
        checks.expect(received is not None and close(received, expected_variances, 1e-4),
                      f"{call}: the network should receive the noise variances "
                      f"noise_rates**2 = {rounded(expected_variances)}, "
                      + _received_noise_levels(received, noise_rates.ravel(),
                                               signal_rates.ravel()))
        passed, message = _identity_check(config.prediction, pred_noises, pred_images,
                                          noisy_images, noise_rates, signal_rates)
        checks.expect(passed, f"{call}: {message}")
    for training in (True, False):
        (pred_noises, _), (pred_images, _) = pair(
            outcome[f"oracle_training_{training}"],
            f"denoise(..., training={training}) with the oracle network", names)
        checks.expect(close(pred_images, inputs["clean_image"], 1e-4),
                      f"with a network that returns {target} exactly, denoise(..., training="
                      f"{training}) should give back the clean images; the largest difference "
                      f"is {largest_difference(pred_images, inputs['clean_image']):.3g}")
    pairs = [(value, expected) for training in (True, False)
             for (value, _), expected in zip(outputs[training], solution[training])]
    checks.expect(all(close(value, expected, 1e-4) for value, expected in pairs),
                  f"on the same inputs and stand-in networks, the outputs differ from the "
                  f"solution's by up to "
                  f"{max(largest_difference(value, expected) for value, expected in pairs):.3g}")
    checks.expect(*_compiled_denoise_check(outcome["compiled"],
                                           [value for value, _ in outputs[True]]))
    return checks.verdict()


def _compiled_denoise_check(record, eager_outputs):
    """Inside tf.function, as in the train step, the values must be the eager ones."""
    try:
        outputs = pair(record, "denoise inside tf.function", ("pred_noises", "pred_images"))
    except Unusable as problem:
        return False, (f"it works eagerly but not when traced into a graph, as the train step "
                       f"does: {problem}. Call the network directly (not .predict) and use "
                       f"keras.ops on tensors")
    return (all(close(value, eager, 1e-4) for (value, _), eager in zip(outputs, eager_outputs)),
            "inside tf.function it returned other values than eagerly")
