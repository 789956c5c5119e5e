"""The continuous samplers against a float64 ODE solution, DDPM's posterior, and diffusers' steps.

No trained network: for Gaussian data x0 ~ N(0, σ_d²) the ideal noise predictor is known,
ε̂(x) = n·x/(s²σ_d² + n²), and the probability-flow ODE is then linear: in x̄ = x/s and σ̄ = n/s
it is dx̄/dσ̄ = ε̂ = σ̄·x̄/(σ_d² + σ̄²) (Song et al. 2021, eq. 14). scipy's solve_ivp solves it
at tight tolerance, independently of the samplers, and the samplers run in float64 (TensorFlow
allows it), so the measured orders are the methods' and not float32's. σ_d = 1, the variance of
the normalised images that the DDIM network sees.

The orders are measured on whole runs, from the errors at N and 2N steps. On the cosine
schedule λ = log(s/n) changes on a scale of t ≈ 0.02 at its noisy end, where s ≈ 0.02, so steps
equal in t reach the asymptotic regime of the higher orders only at a few hundred steps; the
runs go to 512 steps (in float64 and without a network they take seconds).
"""

import functools

import diffusers_steps
import keras
import numpy as np
import pytest
from keras import ops
from scipy.integrate import solve_ivp

from diffusion_course.continuous_samplers import (
    ContinuousDDIMSampler,
    MultistepSampler,
    SecondOrderSampler,
    make_sampler,
)
from diffusion_course.samplers import Sampler
from diffusion_course.schedules import make_schedule

DATA_STD = 1.0  # σ_d
STEPS = (8, 16, 32, 64, 128, 256, 512)
SEED = 5
INITIAL_NOISE = np.random.default_rng(0).normal(size=(4, 2, 2, 3))


def ideal_network(inputs, training=False):
    """ε̂ = n·x/(s²σ_d² + n²) of the noisy image x and the noise variance n² it is given."""
    noisy_images, noise_variances = inputs
    noise_rates = ops.sqrt(noise_variances)
    return noise_rates * noisy_images / ((1 - noise_variances) * DATA_STD**2 + noise_variances)


@functools.cache
def flow_factor(noise_rate, signal_rate, next_noise_rate, next_signal_rate):
    """x(t')/x(t) along the probability-flow ODE: dx̄/dσ̄ = σ̄·x̄/(σ_d² + σ̄²) from σ̄ = n/s to
    σ̄' = n'/s', solved by scipy (DOP853, rtol 1e-13), then x = s·x̄."""
    solution = solve_ivp(lambda ratio, scaled: ratio * scaled / (DATA_STD**2 + ratio**2),
                         (noise_rate / signal_rate, next_noise_rate / next_signal_rate), [1.0],
                         method="DOP853", rtol=1e-13, atol=1e-15)
    return next_signal_rate * solution.y[0, -1] / signal_rate


def exact_flow(noisy_images, *rates):
    return noisy_images * flow_factor(*(float(rate) for rate in rates))


def test_the_reference_solution_is_the_closed_form():
    """Every x keeps its place in the marginal: x(t) ∝ √(s²σ_d² + n²)."""
    noise_rates, signal_rates = (np.asarray(rates) for rates in COSINE.rates(np.array([1., 0.])))
    closed_form = np.sqrt((signal_rates[1] ** 2 * DATA_STD**2 + noise_rates[1] ** 2)
                          / (signal_rates[0] ** 2 * DATA_STD**2 + noise_rates[0] ** 2))
    found = flow_factor(noise_rates[0], signal_rates[0], noise_rates[1], signal_rates[1])
    assert found == pytest.approx(closed_form, rel=1e-12)


def flow_errors(make, steps=STEPS, network=ideal_network):
    """The largest error of the noisy images at t = 0 after each number of steps."""
    errors = []
    for diffusion_steps in steps:
        sampler = make(diffusion_steps)
        expected = exact_flow(INITIAL_NOISE, sampler.noise_rates[0], sampler.signal_rates[0],
                              sampler.next_noise_rates[-1], sampler.next_signal_rates[-1])
        found = sampler.probability_flow(network, INITIAL_NOISE)
        errors.append(np.abs(found - expected).max())
    return np.array(errors)


def orders(errors):
    """The empirical orders log2(e_N / e_2N) between successive step counts."""
    return np.log2(errors[:-1] / errors[1:])


COSINE = make_schedule("cosine")
OPTIONS = dict(jit_compile=False, dtype="float64")
# the cosine and log-SNR linear schedules, and both step-linear ones
ORDER_SCHEDULES = ("cosine", "log-snr-linear", "noise-step-linear", "signal-step-linear")


def assert_order(errors, order):
    """The order at the finest pair (256 -> 512 steps) is within ±0.3 of `order`."""
    measured = orders(errors)
    assert abs(measured[-1] - order) <= 0.3, measured


@pytest.mark.parametrize("schedule_name", ORDER_SCHEDULES)
def test_ddim_converges_with_order_1_and_is_multistep_of_order_1(schedule_name):
    schedule = make_schedule(schedule_name)
    errors = flow_errors(lambda steps: ContinuousDDIMSampler(schedule, steps, **OPTIONS))
    assert_order(errors, 1)
    euler = flow_errors(lambda steps: MultistepSampler(schedule, steps, order=1, **OPTIONS))
    np.testing.assert_array_equal(euler, errors)


@pytest.mark.parametrize("schedule_name", ORDER_SCHEDULES)
@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_second_order_converges_with_order_2(alpha, schedule_name):
    schedule = make_schedule(schedule_name)
    assert_order(flow_errors(lambda steps: SecondOrderSampler(schedule, steps, alpha=alpha,
                                                              **OPTIONS)), 2)


@pytest.mark.parametrize("schedule_name", ORDER_SCHEDULES)
@pytest.mark.parametrize("order", [2, 3, 4])
def test_multistep_converges_with_its_order(order, schedule_name):
    """Whole runs, from the start-up steps on, with weights from the steps' actual λ's."""
    schedule = make_schedule(schedule_name)
    errors = flow_errors(functools.partial(MultistepSampler, schedule, order=order, **OPTIONS))
    assert_order(errors, order)


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


def image_predicting_network(inputs, training=False):
    """x̂0 = s·σ_d²·x/(s²σ_d² + n²): the ideal network, predicting the image."""
    noisy_images, noise_variances = inputs
    signal_rates = ops.sqrt(1 - noise_variances)
    return signal_rates * DATA_STD**2 * noisy_images / (
        (1 - noise_variances) * DATA_STD**2 + noise_variances)


NO_NOISE_AT_THE_END = make_schedule("assignment-cosine", min_signal_rate=0.02,
                                    max_signal_rate=1.0)


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_second_order_takes_a_ddim_last_step_where_the_schedule_ends_without_noise(alpha):
    """λ' = +∞ on the last step: no network call at n = 0, where an image-predicting network's
    ε̂ = (x − s·x̂0)/n would be 0/0 (EDM, Algorithm 2: "if σ_{i+1} ≠ 0")."""
    sampler = SecondOrderSampler(NO_NOISE_AT_THE_END, 6, "image", alpha=alpha, **OPTIONS)
    assert sampler.network_evaluations == 2 * 6 - 1
    assert np.all(np.isfinite(sampler.sample(image_predicting_network, INITIAL_NOISE)))
    # and the run still converges with order 2
    errors = flow_errors(lambda steps: SecondOrderSampler(NO_NOISE_AT_THE_END, steps, "image",
                                                          alpha=alpha, **OPTIONS),
                         network=image_predicting_network)
    assert_order(errors, 2)


def test_multistep_orders_above_1_are_refused_where_the_schedule_ends_without_noise():
    with pytest.raises(ValueError, match="ends without noise"):
        MultistepSampler(NO_NOISE_AT_THE_END, 8, order=2)
    MultistepSampler(NO_NOISE_AT_THE_END, 8, order=1)  # DDIM


def test_multistep_order_5_is_refused_with_its_reason():
    with pytest.raises(ValueError, match="order=5 is not offered: .* round-off"):
        MultistepSampler(COSINE, 8, order=5)


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
    (dict(name="multistep", order=2.0), "order=2.0"),
])
def test_bad_sampler_arguments_are_explained(arguments, message):
    arguments = {"name": "ddim", "schedule": COSINE, "diffusion_steps": 4, **arguments}
    with pytest.raises(ValueError, match=message):
        make_sampler(**arguments)
