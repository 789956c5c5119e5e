"""Self-checks for the DDIM assignment: quick CPU tests that say what is wrong.

They check properties, not a hidden answer: the rate identities of the schedule, that a network
which knows the true noise lets `denoise` reconstruct the images, and that a sampler driven by
an oracle network lands on the image the oracle knows. Each check raises `SelfCheckError` with
what was expected and what came back.

The sampler's check and the training check also run the functions they depend on. When one of
those fails its own check, they blame it ("your diffusion_schedule fails its self-check; fix it
first") instead of reporting a symptom that would point at a correct sampler or training run.
"""

from types import MethodType, SimpleNamespace

import numpy as np
from keras import ops

from diffusion_course.variants import FAMILIES, TARGETS

# what each schedule family moves linearly in t, from the rates (n, s); see variants.py
LINEAR_QUANTITIES = {
    "assignment-cosine": lambda n, s: np.arccos(s),
    "linear": lambda n, s: n**2,
    "log-snr-linear": lambda n, s: np.log(s**2) - np.log(n**2),
    "log-signal-linear": lambda n, s: np.log(s**2),
}
# the target a network predicts, given the clean images x0, the noises ε and the rates (n, s)
TRUE_TARGETS = {
    "noise": lambda images, noises, n, s: noises,
    "image": lambda images, noises, n, s: images + 0.0 * noises,  # one per noisy image
    "velocity": lambda images, noises, n, s: s * noises - n * images,  # v = s·ε − n·x0
}


class SelfCheckError(AssertionError):
    """A self-check failed; the message says what was expected and what came back."""


def _expect(condition, message):
    if not condition:
        raise SelfCheckError(message)


def _numpy(value):
    return np.asarray(ops.convert_to_numpy(value))


class _RecordingNetwork:
    """Stands in for a Keras network: returns a chosen noise and records what it was given."""

    def __init__(self, name, noise_for):
        self.name = name
        self.noise_for = noise_for
        self.calls = []

    def __call__(self, inputs, training=False):
        noisy_images, noise_variances = inputs
        self.calls.append((_numpy(noisy_images), _numpy(noise_variances), training))
        return ops.convert_to_tensor(self.noise_for(_numpy(noisy_images),
                                                    _numpy(noise_variances)))


def _model_with(functions, config, network=None, ema_network=None):
    """A stand-in for the DiffusionModel: `functions` as its methods, `config` and networks.

    A plain object keeps the checks fast: no U-Net is built just to test three functions.
    """
    model = SimpleNamespace(config=config, network=network, ema_network=ema_network)
    for name, function in functions.items():
        setattr(model, name, MethodType(function, model))
    return model


def check_diffusion_schedule(diffusion_schedule, config):
    """signal² + noise² = 1, the endpoints hit the bounds, rates are monotone and float32."""
    model = _model_with({"diffusion_schedule": diffusion_schedule}, config)
    times = np.linspace(0.0, 1.0, 11, dtype="float32").reshape(-1, 1, 1, 1)
    result = model.diffusion_schedule(ops.convert_to_tensor(times))
    _expect(isinstance(result, (tuple, list)) and len(result) == 2,
            f"diffusion_schedule should return (noise_rates, signal_rates), got {type(result)}")
    noise_rates, signal_rates = (_numpy(rate) for rate in result)
    _expect(noise_rates.shape == times.shape and signal_rates.shape == times.shape,
            f"rates should have the shape of diffusion_times {times.shape}, got "
            f"{noise_rates.shape} and {signal_rates.shape}")
    _expect(noise_rates.dtype == np.float32 and signal_rates.dtype == np.float32,
            f"rates should be float32, got {noise_rates.dtype} and {signal_rates.dtype}")
    power = noise_rates**2 + signal_rates**2
    _expect(np.allclose(power, 1.0, atol=1e-5),
            f"noise_rate² + signal_rate² should be 1 at every time, got values from "
            f"{power.min():.4f} to {power.max():.4f}")
    _expect(np.isclose(signal_rates[0].item(), config.max_signal_rate, atol=1e-5),
            f"signal_rate at t=0 should be max_signal_rate={config.max_signal_rate}, got "
            f"{signal_rates[0].item():.4f}" + (" (are sin and cos swapped?)"
                                               if noise_rates[0].item() > 0.5 else ""))
    _expect(np.isclose(signal_rates[-1].item(), config.min_signal_rate, atol=1e-5),
            f"signal_rate at t=1 should be min_signal_rate={config.min_signal_rate}, got "
            f"{signal_rates[-1].item():.4f}")
    _expect(np.all(np.diff(signal_rates.ravel()) < 0),
            "signal_rates should decrease as diffusion time grows")
    _check_family(noise_rates.ravel().astype(np.float64), signal_rates.ravel().astype(np.float64),
                  times.ravel().astype(np.float64), config)
    return "diffusion_schedule: all self-checks passed"


def _check_family(noise_rates, signal_rates, times, config):
    """This term's family: its quantity is linear in t between its values at the two ends."""
    family = FAMILIES[config.schedule]
    with np.errstate(all="ignore"):
        quantity = LINEAR_QUANTITIES[config.schedule](noise_rates, signal_rates)
    line = quantity[0] + times * (quantity[-1] - quantity[0])
    error = np.abs(quantity - line)
    worst = int(np.nanargmax(error)) if np.isfinite(error).any() else 0
    _expect(np.all(error < 1e-3 * (1.0 + np.abs(quantity[-1] - quantity[0]))),
            f"this term's schedule is the {family.title} schedule: {family.linear_quantity} "
            f"should change linearly with t; at t={times[worst]:.1f} it is {quantity[worst]:.4f}"
            f", not {line[worst]:.4f} on the line between its values at t=0 and t=1")


def check_denoise(denoise, config, seed=0):
    """With a network that knows its true target (this term's: noise, image or velocity),
    denoise must give back the clean images and the noise."""
    rng = np.random.default_rng(seed)
    size = config.image_size
    images = rng.standard_normal((3, size, size, 3)).astype("float32")
    noises = rng.standard_normal(images.shape).astype("float32")
    noise_rates = np.array([0.2, 0.6, 0.95], "float32").reshape(-1, 1, 1, 1)
    signal_rates = np.sqrt(1.0 - noise_rates**2)
    noisy_images = signal_rates * images + noise_rates * noises

    target = TARGETS[config.prediction]

    def true_target(_, noise_variances):
        # this stand-in only knows the target if it is told the noise *variance*
        _expect(np.allclose(noise_variances.reshape(-1), (noise_rates**2).reshape(-1),
                            atol=1e-5),
                f"the network should receive the noise variance noise_rate² = "
                f"{np.round(noise_rates.ravel()**2, 3)}, got "
                f"{np.round(noise_variances.ravel(), 3)}")
        return TRUE_TARGETS[config.prediction](images, noises, noise_rates, signal_rates)

    network = _RecordingNetwork("network", true_target)
    ema_network = _RecordingNetwork("ema_network", true_target)
    model = _model_with({"denoise": denoise}, config, network, ema_network)

    for training, expected_network in ((True, network), (False, ema_network)):
        network.calls.clear()
        ema_network.calls.clear()
        pred_noises, pred_images = (_numpy(value) for value in model.denoise(
            ops.convert_to_tensor(noisy_images), ops.convert_to_tensor(noise_rates),
            ops.convert_to_tensor(signal_rates), training=training))
        _expect(len(expected_network.calls) == 1,
                f"with training={training} denoise should call self.{expected_network.name} "
                f"once; calls: network={len(network.calls)}, "
                f"ema_network={len(ema_network.calls)}")
        error = np.abs(pred_noises - noises).max()
        _expect(error < 1e-3,
                f"this term the network predicts {target.what}; {target.identities}. With the "
                f"true target, pred_noises should equal the true noise; the largest difference "
                f"is {error:.4f}")
        error = np.abs(pred_images - images).max()
        _expect(error < 1e-3,
                f"this term the network predicts {target.what}; {target.identities}. With the "
                f"true target, pred_images should equal the clean images; the largest "
                f"difference is {error:.4f}")
    return "denoise: all self-checks passed"


def _check_upstream(checked, diffusion_schedule, denoise, config):
    """Raises, blaming the first of the schedule and denoise that fails its own self-check."""
    for name, check in (("diffusion_schedule", lambda: check_diffusion_schedule(
            diffusion_schedule, config)), ("denoise", lambda: check_denoise(denoise, config))):
        try:
            check()
        except SelfCheckError as error:
            raise SelfCheckError(
                f"{checked} cannot be checked yet: your {name} fails its self-check; fix it "
                f"first ({checked} uses it). {name}'s self-check says: {error}"
            ) from None


def check_reverse_diffusion(reverse_diffusion, diffusion_schedule, denoise, config, seed=0):
    """A sampler driven by an oracle that knows one image must return that image.

    It runs the sampler with your diffusion_schedule and denoise, so those are checked first.
    """
    _check_upstream("reverse_diffusion", diffusion_schedule, denoise, config)
    rng = np.random.default_rng(seed)
    size = config.image_size
    target = rng.standard_normal((1, size, size, 3)).astype("float32")
    initial_noise = rng.standard_normal((2, size, size, 3)).astype("float32")

    def oracle_noise(noisy_images, noise_variances):
        noise_rates = np.sqrt(noise_variances)
        signal_rates = np.sqrt(1.0 - noise_variances)
        return (noisy_images - signal_rates * target) / noise_rates

    def oracle(noisy_images, noise_variances):
        """This term's target for the image the oracle knows."""
        return TRUE_TARGETS[config.prediction](target, oracle_noise(noisy_images, noise_variances),
                                               np.sqrt(noise_variances),
                                               np.sqrt(1.0 - noise_variances))

    network = _RecordingNetwork("network", oracle)
    ema_network = _RecordingNetwork("ema_network", oracle)
    model = _model_with({"reverse_diffusion": reverse_diffusion,
                         "diffusion_schedule": diffusion_schedule, "denoise": denoise},
                        config, network, ema_network)
    for steps in (1, 4):
        ema_network.calls.clear()
        generated = _numpy(model.reverse_diffusion(ops.convert_to_tensor(initial_noise), steps))
        _expect(generated.shape == initial_noise.shape,
                f"reverse_diffusion should return images shaped {initial_noise.shape}, "
                f"got {generated.shape}")
        _expect(len(ema_network.calls) == steps and not network.calls,
                f"with {steps} steps the EMA network should be called {steps} times (and the "
                f"training network never); got {len(ema_network.calls)} and "
                f"{len(network.calls)}")
        first_variance = ema_network.calls[0][1].ravel()[0]
        max_noise_variance = 1.0 - config.min_signal_rate**2
        _expect(np.isclose(first_variance, max_noise_variance, atol=1e-4),
                f"the first step should start at diffusion time 1 (noise variance "
                f"{max_noise_variance:.4f}), got {first_variance:.4f}")
        # each step must start from the previous step's predictions, remixed at its own rates
        for step, (previous, current) in enumerate(zip(ema_network.calls, ema_network.calls[1:])):
            previous_noises = oracle_noise(previous[0], previous[1])
            variances = current[1]
            remixed = np.sqrt(1.0 - variances) * target + np.sqrt(variances) * previous_noises
            mismatch = np.abs(current[0] - remixed).max()
            _expect(mismatch < 1e-3,
                    f"step {step + 2} should start from the predicted images and noises of step "
                    f"{step + 1}, remixed with the signal and noise rates of step {step + 2}; "
                    f"they differ by up to {mismatch:.3f} (are you remixing with the current "
                    f"rates instead of the next ones?)")
        error = np.abs(generated - target).max()
        _expect(error < 1e-3,
                f"with an oracle network that knows the image, reverse_diffusion should return "
                f"the predicted images equal to it; the largest difference is {error:.3f} "
                f"(are you returning the noisy images instead?)")
    return "reverse_diffusion: all self-checks passed"


UNLEARNED_NOISE_MAE = float(np.sqrt(2.0 / np.pi))  # E|ε| for ε ~ N(0, 1): predicting zero


def check_training(history, diffusion_schedule, denoise, config, threshold=0.7):
    """The model trained with a schedule and denoise that pass their self-checks, and the last
    epoch's noise MAE fell below `threshold` (√(2/π) ≈ 0.798 is the unlearned loss).

    The loss alone cannot tell: with sin and cos swapped the network still learns to predict
    the noise (at the wrong noise levels), and the loss falls just as well.
    """
    _check_upstream("the training run", diffusion_schedule, denoise, config)
    losses = history.history["n_loss"]
    _expect(losses[-1] < threshold,
            f"after training, the noise MAE should be below {threshold} (a model that learned "
            f"nothing sits at √(2/π) ≈ {UNLEARNED_NOISE_MAE:.3f}); got {losses[-1]:.3f}")
    return f"training: noise MAE fell from {losses[0]:.3f} to {losses[-1]:.3f}"
