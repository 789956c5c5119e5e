"""The noise schedules against the closed forms of their source, in float64 numpy.

The seven log-SNR schedules are transcribed from the extended DDIM codebase's definitions:
beresandras/clear-diffusion-keras, schedule.py (commit 37378af), the `get_noise_powers` of each
schedule class. The assignment's cosine comes from the Keras DDIM text (`diffusion_schedule`).
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from diffusion_course import config as config_module
from diffusion_course.config import ConfigError, DDIMConfig
from diffusion_course.schedules import SCHEDULES, make_schedule, schedule_from_config

TIMES = np.linspace(0.0, 1.0, 201)
LOG_SNR_BOUNDS = [(2.5, -7.5), (5.0, -5.0), (1.0, -2.0)]


def noise_power_closed_form(name, t, start_log_snr, end_log_snr):
    """p(t) = noise_rate², as clear-diffusion-keras's schedule.py computes it (commit 37378af):
    start_snr = e^start_log_snr, start_noise_power = 1/(1 + start_snr), and so for the end."""
    start_snr, end_snr = np.exp(start_log_snr), np.exp(end_log_snr)
    p_s, p_e = 1 / (1 + start_snr), 1 / (1 + end_snr)
    if name == "linear":  # LinearSchedule
        return p_s + t * (p_e - p_s)
    if name == "cosine":  # CosineSchedule
        start_angle, end_angle = np.arcsin(p_s**0.5), np.arcsin(p_e**0.5)
        return np.sin(start_angle + t * (end_angle - start_angle)) ** 2
    if name == "log-snr-linear":  # LogSNRLinearSchedule
        return start_snr**t / (start_snr * end_snr**t + start_snr**t)
    if name == "log-noise-linear":  # LogNoiseLinearSchedule
        return p_s * (p_e / p_s) ** t
    if name == "log-signal-linear":  # LogSignalLinearSchedule
        return 1 - (1 - p_s) * ((1 - p_e) / (1 - p_s)) ** t
    if name == "noise-step-linear":  # NoiseStepLinearSchedule
        return p_e * (p_s / p_e) ** ((1 - t) ** 2)
    if name == "signal-step-linear":  # SignalStepLinearSchedule
        return 1 - (1 - p_s) * ((1 - p_e) / (1 - p_s)) ** (t**2)
    raise AssertionError(name)


LOG_SNR_SCHEDULES = [name for name in SCHEDULES if name != "assignment-cosine"]


def test_there_are_the_seven_schedules_and_the_assignments():
    assert len(LOG_SNR_SCHEDULES) == 7
    assert tuple(SCHEDULES) == config_module.SCHEDULE_NAMES


@pytest.mark.parametrize("bounds", LOG_SNR_BOUNDS)
@pytest.mark.parametrize("name", LOG_SNR_SCHEDULES)
def test_schedules_match_their_closed_forms(name, bounds):
    noise_rates, signal_rates = (np.asarray(rates) for rates in
                                 make_schedule(name, *bounds).rates(TIMES))
    assert noise_rates.dtype == np.float64 and noise_rates.shape == TIMES.shape
    noise_powers = noise_power_closed_form(name, TIMES, *bounds)
    np.testing.assert_allclose(noise_rates**2, noise_powers, rtol=1e-12)
    np.testing.assert_allclose(signal_rates**2, 1 - noise_powers, rtol=1e-10)
    np.testing.assert_allclose(signal_rates**2 + noise_rates**2, 1.0, rtol=1e-14)
    # the ends sit at the log-SNR bounds, and the noise grows in between
    log_snrs = np.log(signal_rates**2 / noise_rates**2)
    np.testing.assert_allclose(log_snrs[[0, -1]], bounds, atol=1e-9)
    assert np.all(np.diff(noise_rates) > 0)


def test_noise_step_linear_is_not_its_mirror_image():
    """An earlier version computed p_s·(p_e/p_s)^(t²): the same ends, the opposite shape. The
    source's noise power grows fast at first: its next-step ratio is largest at t = 0."""
    noise_rates, _ = make_schedule("noise-step-linear").rates(TIMES)
    p_s, p_e = 1 / (1 + np.exp(2.5)), 1 / (1 + np.exp(-7.5))
    mirrored = p_s * (p_e / p_s) ** (TIMES**2)
    assert np.max(np.abs(np.asarray(noise_rates) ** 2 - mirrored)) > 0.1
    step_ratios = np.diff(np.log(np.asarray(noise_rates) ** 2))
    assert np.all(np.diff(step_ratios) < 0)


@pytest.mark.parametrize("bounds", [(0.02, 0.95), (0.1, 1.0), (0.5, 0.6)])
def test_the_assignment_cosine_runs_between_the_signal_rates(bounds):
    min_signal_rate, max_signal_rate = bounds
    noise_rates, signal_rates = make_schedule(
        "assignment-cosine", min_signal_rate=min_signal_rate,
        max_signal_rate=max_signal_rate).rates(TIMES)
    start, end = math.acos(max_signal_rate), math.acos(min_signal_rate)
    angles = start + TIMES * (end - start)  # the DDIM text's closed form
    np.testing.assert_allclose(np.asarray(signal_rates), np.cos(angles), atol=1e-15)
    np.testing.assert_allclose(np.asarray(noise_rates), np.sin(angles), atol=1e-15)


def test_the_assignment_cosine_is_the_cosine_between_the_same_log_snrs():
    assignment = make_schedule("assignment-cosine", min_signal_rate=0.02, max_signal_rate=0.95)
    cosine = make_schedule("cosine", assignment.start_log_snr, assignment.end_log_snr)
    np.testing.assert_allclose(np.asarray(assignment.rates(TIMES)),
                               np.asarray(cosine.rates(TIMES)), atol=1e-15)
    assert assignment.start_log_snr == pytest.approx(math.log(0.95**2 / (1 - 0.95**2)))


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedules_run_in_float32_inside_a_compiled_function(name):
    schedule = make_schedule(name)
    times = tf.constant(TIMES.reshape(-1, 1, 1, 1), tf.float32)
    noise_rates, signal_rates = tf.function(schedule.rates, jit_compile=True)(times)
    assert noise_rates.dtype == tf.float32 and noise_rates.shape == times.shape
    expected = np.asarray(schedule.rates(TIMES)).reshape(2, -1, 1, 1, 1)
    # float32 keeps the small signal rates at the noisy end to a relative 1e-5
    np.testing.assert_allclose(noise_rates.numpy(), expected[0], rtol=1e-5)
    np.testing.assert_allclose(signal_rates.numpy(), expected[1], rtol=1e-5)


def test_the_configuration_picks_the_schedule_by_name():
    config = DDIMConfig.from_profile("quick", schedule="log-snr-linear", start_log_snr=4.0,
                                     end_log_snr=-6.0)
    schedule = schedule_from_config(config)
    assert type(schedule) is SCHEDULES["log-snr-linear"]
    assert (schedule.start_log_snr, schedule.end_log_snr) == (4.0, -6.0)
    default = schedule_from_config(DDIMConfig.from_profile("quick"))
    assert (default.min_signal_rate, default.max_signal_rate) == (0.02, 0.95)


@pytest.mark.parametrize("overrides, field", [
    (dict(schedule="cosin"), "schedule"),
    (dict(start_log_snr=-8.0), "start_log_snr"),
    (dict(end_log_snr=float("-inf")), "end_log_snr"),
    (dict(start_log_snr="2.5"), "start_log_snr"),
])
def test_bad_schedule_settings_are_explained(overrides, field):
    with pytest.raises(ConfigError, match=field):
        DDIMConfig.from_profile("quick", **overrides)


@pytest.mark.parametrize("arguments, message", [
    (("cosin",), "unknown"),
    (("linear", -7.5, 2.5), "start_log_snr > end_log_snr"),
    (("linear", 2.5, float("-inf")), "finite"),
])
def test_bad_schedule_arguments_are_explained(arguments, message):
    with pytest.raises(ValueError, match=message):
        make_schedule(*arguments)


def test_bad_signal_rates_are_explained():
    with pytest.raises(ValueError, match="0 < min_signal_rate < max_signal_rate <= 1"):
        make_schedule("assignment-cosine", min_signal_rate=0.0)
