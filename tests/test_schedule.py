"""The continuous cosine schedule of the DDIM assignment (instructor reference)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from autograder.assignment.solution import solution_diffusion_schedule
from diffusion_course.config import ConfigError, DDIMConfig

TIMES = np.linspace(0.0, 1.0, 101, dtype=np.float32).reshape(-1, 1, 1, 1)


@pytest.mark.parametrize("bounds", [(0.02, 0.95), (0.1, 1.0), (0.5, 0.6)])
def test_rates_are_a_unit_circle_and_hit_the_bounds(bounds):
    min_signal_rate, max_signal_rate = bounds
    noise_rates, signal_rates = (np.asarray(r) for r in
                                 solution_diffusion_schedule(TIMES, *bounds))
    assert noise_rates.shape == TIMES.shape and noise_rates.dtype == np.float32
    np.testing.assert_allclose(signal_rates**2 + noise_rates**2, 1.0, atol=1e-6)
    np.testing.assert_allclose(signal_rates[0], max_signal_rate, atol=1e-6)
    np.testing.assert_allclose(signal_rates[-1], min_signal_rate, atol=1e-6)
    assert np.all(np.diff(signal_rates.ravel()) < 0)
    assert np.all(np.diff(noise_rates.ravel()) > 0)


def test_matches_the_closed_form():
    start, end = math.acos(0.95), math.acos(0.02)
    angles = start + TIMES.astype(np.float64) * (end - start)
    noise_rates, signal_rates = solution_diffusion_schedule(TIMES, 0.02, 0.95)
    np.testing.assert_allclose(np.asarray(signal_rates), np.cos(angles), atol=1e-6)
    np.testing.assert_allclose(np.asarray(noise_rates), np.sin(angles), atol=1e-6)


def test_works_inside_a_compiled_function():
    compiled = tf.function(lambda t: solution_diffusion_schedule(t, 0.02, 0.95), jit_compile=True)
    noise_rates, signal_rates = compiled(tf.constant(TIMES))
    np.testing.assert_allclose(signal_rates.numpy() ** 2 + noise_rates.numpy() ** 2, 1, atol=1e-6)


@pytest.mark.parametrize("bounds", [(0.0, 0.95), (0.95, 0.95), (0.5, 0.2), (0.02, 1.01)])
def test_bad_bounds_are_rejected(bounds):
    with pytest.raises(ConfigError, match="signal_rate"):
        DDIMConfig.from_profile("quick", min_signal_rate=bounds[0], max_signal_rate=bounds[1])
