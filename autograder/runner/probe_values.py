"""The fixed inputs of the probes and the stand-ins' arithmetic, in numpy alone.

Both sides of the trust boundary read these: the student runner feeds them to a submission
(through the Keras stand-ins of `stand_ins.py`), and the judge explains a sampler's mistakes with
the same arithmetic here, so that a grading whose other results are cached starts no TensorFlow.
A test checks the numpy stand-ins against the Keras ones.
"""

import numpy as np

PROBE_SEED = 2021

# a correct function's cells and probes take about 1 s of CPU time; the wall limit leaves room
# for a machine that shares its cores among several gradings
FUNCTION_CPU_LIMIT_S = 10
FUNCTION_WALL_LIMIT_S = 90

# the tenths, and times between them: a schedule that rounds the times to 10 discrete steps
# (DDPM-style) equals the solution on every tenth, and its training run passes too
SCHEDULE_TIMES = np.sort(np.concatenate([np.linspace(0.0, 1.0, 11), [0.037, 0.413, 0.861]])
                         ).astype("float32").reshape(-1, 1, 1, 1)
# a second pair of bounds: a schedule that hard-codes 0.02 and 0.95 fails here
OTHER_SIGNAL_RATE_BOUNDS = {"min_signal_rate": 0.1, "max_signal_rate": 0.8}

# stand-in networks compute image_gain * images + variance_gain * noise_variances
TRAINING_NETWORK_GAINS = (0.5, 2.0)
EMA_NETWORK_GAINS = (-0.25, 3.0)
DENOISE_NOISE_RATES = np.array([0.2, 0.45, 0.7, 0.9], "float32").reshape(-1, 1, 1, 1)

# the probe schedule of the sampler: log-SNR linear in t, defined for every real t
PROBE_START_LOG_SNR = 2.5
PROBE_END_LOG_SNR = -5.0
REVERSE_DIFFUSION_STEPS = (1, 5, 20)
ORACLE_DIFFUSION_STEPS = 5
NUM_SAMPLER_IMAGES = 3


def probe_inputs(config):
    """The fixed inputs of the denoise and sampler probes, the same on both sides."""
    rng = np.random.default_rng(PROBE_SEED)
    size = config.image_size
    clean_image = rng.standard_normal((1, size, size, 3)).astype("float32")
    noises = rng.standard_normal((len(DENOISE_NOISE_RATES), size, size, 3)).astype("float32")
    signal_rates = np.sqrt(1.0 - DENOISE_NOISE_RATES**2)
    return {
        "clean_image": clean_image,
        "noises": noises,
        "noise_rates": DENOISE_NOISE_RATES,
        "signal_rates": signal_rates,
        "noisy_images": signal_rates * clean_image + DENOISE_NOISE_RATES * noises,
        "initial_noise": rng.standard_normal((NUM_SAMPLER_IMAGES, size, size, 3)).astype(
            "float32"),
    }


def probe_times(noise_rates, signal_rates):
    """The diffusion times at which `probe_schedule` gives these rates (inverse of λ(t))."""
    log_snr = np.log(np.square(signal_rates, dtype=np.float64)) - np.log(
        np.square(noise_rates, dtype=np.float64))
    return (log_snr - PROBE_START_LOG_SNR) / (PROBE_END_LOG_SNR - PROBE_START_LOG_SNR)


def probe_rates(diffusion_times):
    """`stand_ins.probe_schedule` in numpy: (noise_rates, signal_rates), float32."""
    log_snr = PROBE_START_LOG_SNR + np.asarray(diffusion_times, np.float32) * np.float32(
        PROBE_END_LOG_SNR - PROBE_START_LOG_SNR)
    return (np.sqrt(1 / (1 + np.exp(log_snr))).astype(np.float32),
            np.sqrt(1 / (1 + np.exp(-log_snr))).astype(np.float32))


def probe_denoised(noisy_images, noise_rates, signal_rates, training, clean_image=None):
    """`stand_ins.probe_denoise` in numpy, float32: (pred_noises, pred_images) of the affine
    stand-ins (the training or the EMA one), or of the image oracle that knows `clean_image`."""
    noisy_images, noise_rates, signal_rates = (np.asarray(value, np.float32) for value in (
        noisy_images, noise_rates, signal_rates))
    if clean_image is not None:
        pred_images = 0.0 * noisy_images + np.asarray(clean_image, np.float32)
    else:
        image_gain, variance_gain = TRAINING_NETWORK_GAINS if training else EMA_NETWORK_GAINS
        pred_images = image_gain * noisy_images + variance_gain * noise_rates**2
    pred_noises = (noisy_images - signal_rates * pred_images) / noise_rates
    return pred_noises, pred_images


def sampler_runs():
    """(diffusion_steps, oracle) of every sampler probe, named as in the result."""
    runs = {f"probe_steps_{steps}": (steps, False) for steps in REVERSE_DIFFUSION_STEPS}
    runs[f"oracle_steps_{ORACLE_DIFFUSION_STEPS}"] = (ORACLE_DIFFUSION_STEPS, True)
    return runs
