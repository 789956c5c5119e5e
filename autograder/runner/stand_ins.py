"""The stand-ins and fixed inputs of the probes, shared by both sides of the trust boundary.

The student runner calls a student's function on these; the judge calls the solution's function
on the very same ones, in its own process, so "expected" is the solution's output:

1. diffusion_schedule on times in [0, 1] shaped (n, 1, 1, 1), with the course's signal-rate
   bounds and with other bounds (hard-coded bounds show up there);
2. denoise with two affine stand-in networks, distinct for self.network and self.ema_network,
   whose outputs tell which one ran and which noise level it was given, and with an oracle
   network that returns the true target of the variant (noise, image or velocity);
3. reverse_diffusion with a probe schedule and a probe denoise (not the assignment's: log-SNR
   linear in time, image prediction) that log every call, for 1, 5 and 20 steps, and with an
   oracle that knows the clean image.

This module holds no solution code and decides nothing.
"""

import keras
import numpy as np
from keras import layers, ops

from autograder import FUNCTION_NAMES  # noqa: F401 (judge.py and verdicts/ read it from here)
from autograder.runner.probe_values import (  # noqa: F401 (the probes' values, re-exported)
    DENOISE_NOISE_RATES,
    EMA_NETWORK_GAINS,
    NUM_SAMPLER_IMAGES,
    OTHER_SIGNAL_RATE_BOUNDS,
    PROBE_END_LOG_SNR,
    PROBE_START_LOG_SNR,
    SCHEDULE_TIMES,
    TRAINING_NETWORK_GAINS,
    probe_inputs,
    probe_times,
    sampler_runs,
)
from diffusion_course.ddim import DiffusionModel


def affine_network(image_size, image_gain, variance_gain, name):
    """A network whose output image_gain·x + variance_gain·v reveals the variance v it got."""
    noisy_images = keras.Input(shape=(image_size, image_size, 3))
    noise_variances = keras.Input(shape=(1, 1, 1))
    outputs = layers.Lambda(
        lambda inputs: image_gain * inputs[0] + variance_gain * inputs[1]
    )([noisy_images, noise_variances])
    return keras.Model([noisy_images, noise_variances], outputs, name=name)


def target_oracle_network(clean_image, prediction, name="target_oracle"):
    """Knows the clean image x0, so returns the exact target that `prediction` names for the
    noisy image x at noise variance v = n² (s = √(1 − v)): the noise ε = (x − s·x0)/n, the image
    x0, or the velocity v = s·ε − n·x0 = (s·x − x0)/n (since s² + n² = 1)."""
    image_size = clean_image.shape[1]
    noisy_images = keras.Input(shape=(image_size, image_size, 3))
    noise_variances = keras.Input(shape=(1, 1, 1))
    targets = {
        "noise": lambda x, s, n: (x - s * clean_image) / n,
        "image": lambda x, s, n: 0.0 * x + clean_image,
        "velocity": lambda x, s, n: (s * x - clean_image) / n,
    }
    outputs = layers.Lambda(
        lambda inputs: targets[prediction](inputs[0], ops.sqrt(1.0 - inputs[1]),
                                           ops.sqrt(inputs[1]))
    )([noisy_images, noise_variances])
    return keras.Model([noisy_images, noise_variances], outputs, name=name)


def probe_schedule(self, diffusion_times):
    """Log-SNR linear in t: signal² = sigmoid(λ), noise² = sigmoid(-λ), so signal² + noise² = 1."""
    log_snr = PROBE_START_LOG_SNR + ops.cast(diffusion_times, "float32") * (
        PROBE_END_LOG_SNR - PROBE_START_LOG_SNR)
    return ops.sqrt(ops.sigmoid(-log_snr)), ops.sqrt(ops.sigmoid(log_snr))


def probe_denoise(self, noisy_images, noise_rates, signal_rates, training):
    """Image prediction: the stand-in predicts x̂0, then ε̂ = (x − s·x̂0) / n (another
    parametrisation than the assignment's, so the sampler is tested on its own)."""
    network = self.network if training else self.ema_network
    pred_images = network([noisy_images, noise_rates**2])
    pred_noises = (noisy_images - signal_rates * pred_images) / noise_rates
    return pred_noises, pred_images


def to_numpy(value):
    return np.asarray(ops.convert_to_numpy(value))


def probe_model(config, methods, network, ema_network):
    """A DiffusionModel with the given methods whose networks are the stand-ins."""
    model = type("Probe", (DiffusionModel,), dict(methods))(config, seed=0)
    model.network = network
    model.ema_network = ema_network
    return model


def stand_in_networks(config):
    size = config.image_size
    return (affine_network(size, *TRAINING_NETWORK_GAINS, name="probe_network"),
            affine_network(size, *EMA_NETWORK_GAINS, name="probe_ema_network"))


def schedule_probe_config(config, bounds):
    """The course's configuration, or the same with OTHER_SIGNAL_RATE_BOUNDS."""
    return config if bounds == "course" else config.replace(**OTHER_SIGNAL_RATE_BOUNDS)


def schedule_probe(diffusion_schedule, config):
    """A model with this schedule, and the probe times as its argument."""
    model = probe_model(config, {"diffusion_schedule": diffusion_schedule},
                        *stand_in_networks(config))
    return model, ops.convert_to_tensor(SCHEDULE_TIMES)


def denoise_probe(denoise, config, oracle):
    """A model with this denoise and the affine stand-ins (or, as both networks, the oracle of
    the target that the config's variant predicts), and its arguments (noisy_images,
    noise_rates, signal_rates)."""
    inputs = probe_inputs(config)
    if oracle:
        network = ema_network = target_oracle_network(inputs["clean_image"], config.prediction)
    else:
        network, ema_network = stand_in_networks(config)
    model = probe_model(config, {"denoise": denoise}, network, ema_network)
    arguments = [ops.convert_to_tensor(inputs[name])
                 for name in ("noisy_images", "noise_rates", "signal_rates")]
    return model, arguments


def reverse_diffusion_probe(reverse_diffusion, config, oracle):
    """A model with this sampler, the probe schedule and a probe denoise that logs its inputs.

    Returns (model, initial noise, calls): `calls` gets one dict per denoise call.
    """
    calls = []

    def logging_denoise(self, noisy_images, noise_rates, signal_rates, training):
        calls.append({"noisy_images": to_numpy(noisy_images), "noise_rates": to_numpy(noise_rates),
                      "signal_rates": to_numpy(signal_rates), "training": bool(training)})
        return probe_denoise(self, noisy_images, noise_rates, signal_rates, training)

    inputs = probe_inputs(config)
    if oracle:
        network = ema_network = target_oracle_network(inputs["clean_image"], "image")
    else:
        network, ema_network = stand_in_networks(config)
    methods = {"reverse_diffusion": reverse_diffusion, "diffusion_schedule": probe_schedule,
               "denoise": logging_denoise}
    model = probe_model(config, methods, network, ema_network)
    return model, ops.convert_to_tensor(inputs["initial_noise"]), calls

