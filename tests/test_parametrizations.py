"""The three network parametrizations and the loss weightings, against float64 numpy."""

import numpy as np
import pytest

from diffusion_course import config as config_module
from diffusion_course.config import ConfigError, DDIMConfig
from diffusion_course.losses import LOSS_FUNCTIONS, LOSS_NAMES, diffusion_losses
from diffusion_course.parametrizations import convert

KINDS = ("noise", "image", "velocity")


@pytest.fixture
def diffusion():
    """Clean images, noises and rates (s² + n² = 1, away from 0 and 1) in float64."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(6, 4, 4, 3))
    noises = rng.normal(size=images.shape)
    angles = rng.uniform(0.05, np.pi / 2 - 0.05, size=(6, 1, 1, 1))
    noise_rates, signal_rates = np.sin(angles), np.cos(angles)
    noisy_images = signal_rates * images + noise_rates * noises
    return {"noise": noises, "image": images,
            "velocity": signal_rates * noises - noise_rates * images,  # Salimans & Ho, sec. 4
            "noisy_images": noisy_images, "noise_rates": noise_rates,
            "signal_rates": signal_rates}


def test_the_names_are_the_configurations():
    assert KINDS == config_module.PREDICTIONS == config_module.LOSS_WEIGHTINGS
    assert tuple(LOSS_FUNCTIONS) == config_module.LOSSES
    assert tuple(LOSS_NAMES) == KINDS


@pytest.mark.parametrize("prediction", KINDS)
def test_each_exact_prediction_gives_all_three(diffusion, prediction):
    converted = convert(prediction, diffusion[prediction], diffusion["noisy_images"],
                        diffusion["noise_rates"], diffusion["signal_rates"])
    for kind in KINDS:
        np.testing.assert_allclose(np.asarray(converted[kind]), diffusion[kind], atol=1e-12,
                                   err_msg=f"{kind} from {prediction}")


@pytest.mark.parametrize("source", KINDS)
@pytest.mark.parametrize("target", KINDS)
def test_round_trips_are_exact_for_any_prediction(diffusion, source, target):
    """Any output, right or wrong: converting through another parametrization changes nothing."""
    rng = np.random.default_rng(1)
    predicted = rng.normal(size=diffusion["noise"].shape)
    rates = diffusion["noisy_images"], diffusion["noise_rates"], diffusion["signal_rates"]
    first = convert(source, predicted, *rates)
    second = convert(target, np.asarray(first[target]), *rates)
    for kind in KINDS:
        np.testing.assert_allclose(np.asarray(second[kind]), np.asarray(first[kind]), atol=1e-12)


def test_unknown_predictions_are_explained(diffusion):
    with pytest.raises(ValueError, match="prediction='eps' is unknown"):
        convert("eps", diffusion["noise"], diffusion["noisy_images"], diffusion["noise_rates"],
                diffusion["signal_rates"])


def test_the_weightings_scale_the_noise_error(diffusion):
    """An error e of ε̂ is an error −(n/s)·e of x̂0 and e/s of v̂: the image weighting is the
    noise weighting times n²/s² under MSE, the velocity weighting times 1/s²."""
    rng = np.random.default_rng(2)
    noise_rates, signal_rates = diffusion["noise_rates"], diffusion["signal_rates"]
    errors = rng.normal(size=diffusion["noise"].shape)
    predicted = convert("noise", diffusion["noise"] + errors, diffusion["noisy_images"],
                        noise_rates, signal_rates)
    for loss, power in (("mse", 2), ("mae", 1)):
        losses = diffusion_losses(diffusion["image"], diffusion["noise"],
                                  np.asarray(predicted["image"]), np.asarray(predicted["noise"]),
                                  noise_rates, signal_rates, loss)
        per_element = np.abs(errors) ** power
        np.testing.assert_allclose(float(losses["noise"]), per_element.mean(), rtol=1e-12)
        np.testing.assert_allclose(float(losses["image"]),
                                   (per_element * (noise_rates / signal_rates) ** power).mean(),
                                   rtol=1e-12)
        np.testing.assert_allclose(float(losses["velocity"]),
                                   (per_element / signal_rates**power).mean(), rtol=1e-12)


@pytest.mark.parametrize("overrides, field", [
    (dict(prediction="eps"), "prediction"),
    (dict(loss_weighting="snr"), "loss_weighting"),
    (dict(loss="huber"), "loss"),
])
def test_bad_parametrization_settings_are_explained(overrides, field):
    with pytest.raises(ConfigError, match=f"{field}=.* is invalid"):
        DDIMConfig.from_profile("quick", **overrides)
