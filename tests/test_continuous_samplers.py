"""The continuous samplers against closed forms, DDPM's posterior, and diffusers' steps.

No trained network: for Gaussian data x0 ~ N(0, σ_d²) the ideal noise predictor is known,
ε̂(x) = n·x/(s²σ_d² + n²), and so is the probability-flow ODE's solution: every x keeps its
place in the marginal, x(t) ∝ √(s(t)²σ_d² + n(t)²). The samplers run in float64 (TensorFlow
allows it), so the measured orders are the methods' and not float32's.
"""

import functools

import diffusers_steps
import keras
import numpy as np
import pytest
from keras import ops

from diffusion_course.continuous_samplers import (
    ContinuousDDIMSampler,
    MultistepSampler,
    SecondOrderSampler,
    make_sampler,
)
from diffusion_course.samplers import Sampler
from diffusion_course.schedules import Schedule, make_schedule

DATA_STD = 0.5  # σ_d
STEPS = (8, 16, 32, 64)
SEED = 5
INITIAL_NOISE = np.random.default_rng(0).normal(size=(4, 2, 2, 3))


def ideal_network(inputs, training=False):
    """ε̂ = n·x/(s²σ_d² + n²) of the noisy image x and the noise variance n² it is given."""
    noisy_images, noise_variances = inputs
    noise_rates = ops.sqrt(noise_variances)
    return noise_rates * noisy_images / ((1 - noise_variances) * DATA_STD**2 + noise_variances)


def exact_flow(noisy_images, noise_rates, signal_rates, next_noise_rates, next_signal_rates):
    """The probability-flow ODE's solution for Gaussian data, from one pair of rates to another."""
    return noisy_images * np.sqrt((next_signal_rates**2 * DATA_STD**2 + next_noise_rates**2)
                                  / (signal_rates**2 * DATA_STD**2 + noise_rates**2))


class NoiseToSignalLinearSchedule(Schedule):
    """σ̄ = n/s linear in t: the DDIM step is Euler's method in σ̄ (Song et al. 2021, eq. 14), so
    here every step has the same length in the ODE's own variable, as Adams–Bashforth assumes."""

    def rates(self, diffusion_times):
        ratios = ((1 - diffusion_times) * np.exp(-self.start_log_snr / 2)
                  + diffusion_times * np.exp(-self.end_log_snr / 2))
        signal_rates = 1 / ops.sqrt(1 + ratios**2)
        return ratios * signal_rates, signal_rates


def flow_errors(make, steps=STEPS):
    """The largest error of the noisy images at t = 0 after 8, 16, 32 and 64 steps."""
    errors = []
    for diffusion_steps in steps:
        sampler = make(diffusion_steps)
        expected = exact_flow(INITIAL_NOISE, sampler.noise_rates[0], sampler.signal_rates[0],
                              sampler.next_noise_rates[-1], sampler.next_signal_rates[-1])
        found = sampler.probability_flow(ideal_network, INITIAL_NOISE)
        errors.append(np.abs(found - expected).max())
    return np.array(errors)


def orders(errors):
    """The empirical orders log2(e_N / e_2N) between successive step counts."""
    return np.log2(errors[:-1] / errors[1:])


COSINE = make_schedule("cosine")
OPTIONS = dict(jit_compile=False, dtype="float64")


def test_ddim_and_euler_converge_with_order_1():
    errors = flow_errors(lambda steps: ContinuousDDIMSampler(COSINE, steps, **OPTIONS))
    np.testing.assert_allclose(orders(errors), 1.0, atol=0.1)
    # multistep of order 1 is DDIM itself
    euler = flow_errors(lambda steps: MultistepSampler(COSINE, steps, order=1, **OPTIONS))
    np.testing.assert_allclose(euler, errors, rtol=1e-12)


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_second_order_converges_with_order_2(alpha):
    errors = flow_errors(lambda steps: SecondOrderSampler(COSINE, steps, alpha=alpha, **OPTIONS))
    assert np.all((orders(errors) > 1.9) & (orders(errors) < 2.6)), orders(errors)


@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_a_multistep_step_of_order_k_has_local_error_of_order_k_plus_1(order):
    """One step from the exact trajectory, with exact past ε̂: the error shrinks as h^(k+1).

    (The whole run starts with one Euler step, whose O(h²) error stays, so with the lower-order
    start that the extended codebase uses a run's global order is at most 2; see below.)
    """
    schedule = NoiseToSignalLinearSchedule(2.0, -2.0)
    errors = []
    for diffusion_steps in STEPS:
        sampler = MultistepSampler(schedule, diffusion_steps, order=order, **OPTIONS)
        step_index = diffusion_steps // 2  # the step from t = 0.5, after a full history
        rates = np.stack([sampler.noise_rates, sampler.signal_rates])
        exact = [exact_flow(INITIAL_NOISE, *rates[:, 0], *rates[:, j])
                 for j in range(step_index + 1)]
        past_noises = np.stack([np.asarray(ideal_network([exact[j], rates[0, j] ** 2]))
                                for j in range(step_index - order + 1, step_index)])
        next_noisy_images, _, _ = sampler.denoising_step(
            ideal_network, exact[step_index], (np.zeros_like(INITIAL_NOISE), past_noises),
            sampler.coefficients_at(step_index, len(INITIAL_NOISE)), None)
        expected = exact_flow(INITIAL_NOISE, *rates[:, 0], sampler.next_noise_rates[step_index],
                              sampler.next_signal_rates[step_index])
        errors.append(np.abs(np.asarray(next_noisy_images) - expected).max())
    # order k + 1 as h shrinks (5.75 at 32 -> 64 steps for order 5); the order below would
    # stay at k
    measured = orders(np.array(errors))
    assert np.all(measured > order + 0.2) and measured[-1] > order + 0.5, measured


def test_multistep_runs_converge_with_order_2_and_higher_orders_do_better():
    """Whole runs, on the schedule whose steps are equal in σ̄. Their first steps use the lower
    orders (as the extended codebase does), and the first, an Euler step, leaves an O(h²) error,
    so asymptotically every order k >= 2 converges with order 2. At 8-64 steps order 3 still
    measures about 2.8 and beats order 2 at every step count. (On the library's schedules,
    whose steps are unequal in σ̄, fixed Adams–Bashforth coefficients are also of order 2.)"""
    schedule = NoiseToSignalLinearSchedule(2.0, -2.0)
    errors = {order: flow_errors(functools.partial(MultistepSampler, schedule, order=order,
                                                   **OPTIONS))
              for order in (2, 3)}
    assert orders(errors[2])[-1] > 1.85, orders(errors[2])
    assert orders(errors[3])[-1] > 2.5, orders(errors[3])
    assert np.all(errors[3] < errors[2])
    # and order 2 on a library schedule
    log_snr_linear = make_schedule("log-snr-linear")
    errors = flow_errors(lambda steps: MultistepSampler(log_snr_linear, steps, order=2,
                                                        **OPTIONS))
    assert orders(errors)[-1] > 1.9, orders(errors)


def test_the_last_step_returns_the_predicted_image():
    sampler = ContinuousDDIMSampler(COSINE, 5, **OPTIONS)
    images, trajectory = sampler.sample(ideal_network, INITIAL_NOISE, return_trajectory=True)
    np.testing.assert_array_equal(images, trajectory.pred_images[-1])
    np.testing.assert_array_equal(trajectory.noisy_images[0], INITIAL_NOISE)
    np.testing.assert_allclose(trajectory.timesteps, [1.0, 0.8, 0.6, 0.4, 0.2])
    # the ideal x̂0 of the last input, x at t = 0.2: (x − n·ε̂)/s (DDIM eq. 12)
    noisy_images = trajectory.noisy_images[-1]
    noise_rate, signal_rate = (np.asarray(rate) for rate in COSINE.rates(np.float64(0.2)))
    pred_noises = np.asarray(ideal_network([noisy_images, noise_rate**2]))
    np.testing.assert_allclose(images, (noisy_images - noise_rate * pred_noises) / signal_rate,
                               rtol=1e-12)


# ---- one stochastic step: DDPM's posterior, and diffusers' schedulers --------------------------

PREDICTION_TYPES = {"noise": "epsilon", "image": "sample", "velocity": "v_prediction"}


def one_step(sampler, network_output, noisy_images, noises, step_index=3):
    """Step `step_index` of the sampler, with a network that outputs `network_output`."""
    next_noisy_images, _, pred_images = sampler.denoising_step(
        lambda inputs: network_output, noisy_images, sampler.initial_carried(noisy_images),
        sampler.coefficients_at(step_index, len(noisy_images)), noises)
    alphas_cumprod = (sampler.signal_rates[step_index] ** 2,
                      sampler.next_signal_rates[step_index] ** 2)
    return np.asarray(next_noisy_images), np.asarray(pred_images), alphas_cumprod


@pytest.fixture
def step_inputs():
    rng = np.random.default_rng(1)
    return [rng.normal(size=INITIAL_NOISE.shape) for _ in range(3)]  # output, x_t, z


@pytest.mark.parametrize("variance_preserving", [True, False])
def test_ddpm_samplers_take_the_posterior_step(step_inputs, variance_preserving):
    """η = 1: x' = μ̃ + √β̃·z variance preserving, x' = μ̃ + √β·z with large variance (DDPM
    eqs. 6–7 with ᾱ_t = s², ᾱ_{t−1} = s'², β = 1 − ᾱ_t/ᾱ_{t−1})."""
    pred_noises, noisy_images, noises = step_inputs
    sampler = make_sampler("ddpm-vp" if variance_preserving else "ddpm-large", COSINE, 10,
                           jit_compile=False)
    sampler.dtype = "float64"
    found, pred_images, (alpha_bar, alpha_bar_prev) = one_step(sampler, pred_noises,
                                                               noisy_images, noises)
    beta = 1 - alpha_bar / alpha_bar_prev
    np.testing.assert_allclose(pred_images, (noisy_images - np.sqrt(1 - alpha_bar) * pred_noises)
                               / np.sqrt(alpha_bar), rtol=1e-12)
    posterior_mean = (beta * np.sqrt(alpha_bar_prev) / (1 - alpha_bar) * pred_images
                      + (1 - alpha_bar_prev) * np.sqrt(1 - beta) / (1 - alpha_bar) * noisy_images)
    posterior_variance = beta * (1 - alpha_bar_prev) / (1 - alpha_bar)
    variance = posterior_variance if variance_preserving else beta
    np.testing.assert_allclose(found, posterior_mean + np.sqrt(variance) * noises, atol=1e-12)


@pytest.mark.parametrize("prediction", list(PREDICTION_TYPES))
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_steps_are_diffusers_ddim_scheduler(step_inputs, prediction, eta):
    network_output, noisy_images, noises = step_inputs
    sampler = ContinuousDDIMSampler(COSINE, 10, prediction, eta=eta, **OPTIONS)
    found, pred_images, alphas_cumprod = one_step(sampler, network_output, noisy_images, noises)
    expected = diffusers_steps.ddim_step(network_output, noisy_images, *alphas_cumprod, eta,
                                         noises, PREDICTION_TYPES[prediction])
    np.testing.assert_allclose(found, expected[0], atol=1e-12)
    np.testing.assert_allclose(pred_images, expected[1], atol=1e-12)


@pytest.mark.parametrize("prediction", list(PREDICTION_TYPES))
@pytest.mark.parametrize("variance_preserving", [True, False])
def test_ddpm_steps_are_diffusers_ddpm_scheduler(step_inputs, prediction, variance_preserving):
    network_output, noisy_images, noises = step_inputs
    sampler = ContinuousDDIMSampler(COSINE, 10, prediction, eta=1.0,
                                    variance_preserving=variance_preserving, **OPTIONS)
    found, pred_images, alphas_cumprod = one_step(sampler, network_output, noisy_images, noises)
    expected = diffusers_steps.ddpm_step(
        network_output, noisy_images, *alphas_cumprod, noises,
        "fixed_small" if variance_preserving else "fixed_large", PREDICTION_TYPES[prediction])
    np.testing.assert_allclose(found, expected[0], atol=1e-12)
    np.testing.assert_allclose(pred_images, expected[1], atol=1e-12)


@pytest.mark.parametrize("name", ["ddpm-vp", "ddpm-large"])
def test_a_schedule_that_ends_without_noise_samples_finite_images(name):
    """max_signal_rate = 1: the last step goes to n' = 0, where σ·n/n' would divide by zero."""
    schedule = make_schedule("assignment-cosine", min_signal_rate=0.02, max_signal_rate=1.0)
    sampler = make_sampler(name, schedule, 4, jit_compile=False)
    assert np.all(np.isfinite(sampler.sample(ideal_network, INITIAL_NOISE, seed=SEED)))


# ---- the compiled loop -----------------------------------------------------------------------


def seed_generator_noises(seed, count, shape):
    generator = keras.random.SeedGenerator(seed)
    return [ops.convert_to_numpy(keras.random.normal(shape, seed=generator)).astype(np.float64)
            for _ in range(count)]


@pytest.mark.parametrize("variance_preserving", [True, False])
def test_the_compiled_stochastic_loop_equals_numpy(variance_preserving):
    """float32 and XLA, as models sample, against DDIM eq. 16 replayed in float64 numpy."""
    initial_noise = INITIAL_NOISE.astype("float32")
    sampler = ContinuousDDIMSampler(COSINE, 6, eta=0.5, variance_preserving=variance_preserving)
    images = sampler.sample(ideal_network, initial_noise, seed=SEED)
    noises = seed_generator_noises(SEED, 6, initial_noise.shape)
    # the cosine schedule's rates from its closed form (formulas.md)
    angles = np.interp(np.linspace(1.0, 0.0, 7), [0, 1], [COSINE.start_angle, COSINE.end_angle])
    noise_rates, signal_rates = np.sin(angles), np.cos(angles)
    x = initial_noise.astype(np.float64)
    for i in range(6):
        n, s, n_next, s_next = (noise_rates[i], signal_rates[i], noise_rates[i + 1],
                                signal_rates[i + 1])
        eps = n * x / (s**2 * DATA_STD**2 + n**2)
        x0 = (x - n * eps) / s
        sigma = 0.5 * n_next / n * np.sqrt(1 - s**2 / s_next**2)
        added = sigma if variance_preserving else sigma * n / n_next
        x = s_next * x0 + np.sqrt(n_next**2 - sigma**2) * eps + added * noises[i]
    np.testing.assert_allclose(images, x0, rtol=1e-4, atol=1e-5)


def test_sampler_kinds_share_one_compiled_loop_for_any_steps():
    def network(inputs, training=False):  # a network of its own, whose loops are counted here
        return ideal_network(inputs)

    for diffusion_steps, eta in [(2, 0.2), (7, 0.2), (30, 1.0)]:
        ContinuousDDIMSampler(COSINE, diffusion_steps, eta=eta).warm_up(network, INITIAL_NOISE)
    for diffusion_steps, alpha in [(2, 0.5), (9, 1.0)]:
        SecondOrderSampler(COSINE, diffusion_steps, alpha=alpha).warm_up(network, INITIAL_NOISE)
    loops = [key for key in Sampler._compiled_loops if key[1] == id(network)]
    assert sorted(key[0].__name__ for key in loops) == ["ContinuousDDIMSampler",
                                                        "SecondOrderSampler"]


def test_network_evaluations_are_counted():
    assert make_sampler("ddim", COSINE, 8).network_evaluations == 8
    assert make_sampler("second-order", COSINE, 8).network_evaluations == 16
    assert make_sampler("multistep", COSINE, 8, order=3).network_evaluations == 8


@pytest.mark.parametrize("arguments, message", [
    (dict(name="heun"), "sampler='heun' is unknown"),
    (dict(diffusion_steps=0), "diffusion_steps=0"),
    (dict(diffusion_steps=1001), "diffusion_steps=1001"),
    (dict(prediction="eps"), "prediction='eps'"),
    (dict(eta=1.5), "eta=1.5"),
    (dict(name="second-order", alpha=0.0), "alpha=0.0"),
    (dict(name="multistep", order=6), "order=6"),
])
def test_bad_sampler_arguments_are_explained(arguments, message):
    arguments = {"name": "ddim", "schedule": COSINE, "diffusion_steps": 4, **arguments}
    with pytest.raises(ValueError, match=message):
        make_sampler(**arguments)
