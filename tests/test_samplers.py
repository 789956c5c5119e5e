"""The compiled samplers against the seed-style loop and against independent float64 numpy.

Networks used here: the quick attention U-Net (weights jittered so that its output is not the
zero of its zero-initialised last layer), an "oracle" that returns the true noise of known clean
images, and a linear stand-in ε̂ = 0.5·x_t whose sampling chain numpy can replay exactly.
"""

import gc
import os
import subprocess
import sys
import textwrap
import weakref

import keras
import numpy as np
import pytest
from keras import ops

from diffusion_course.config import DDPMConfig
from diffusion_course.gaussian_diffusion import GaussianDiffusion
from diffusion_course.networks import build_attention_unet
from diffusion_course.samplers import (
    DDIMSampler,
    DDPMSampler,
    Sampler,
    ddim_timesteps,
    sample_step_by_step,
    step_noise,
)

SEED = 7
IMAGE_SHAPE = (2, 8, 8, 3)  # batch of the stand-in networks' images


class OracleNetwork(keras.Model):
    """Knows the clean images: ε = (x_t − √ᾱ_t·x_0)/√(1 − ᾱ_t) (DDPM eq. 4 solved for ε)."""

    def __init__(self, diffusion, clean_images, **kwargs):
        super().__init__(**kwargs)
        self.diffusion = diffusion
        self.clean_images = ops.convert_to_tensor(clean_images, "float32")

    def call(self, inputs, training=False):
        noisy_images, timesteps = inputs
        signal_rates = ops.reshape(ops.take(self.diffusion.sqrt_alphas_cumprod, timesteps),
                                   (-1, 1, 1, 1))
        noise_rates = ops.reshape(
            ops.take(self.diffusion.sqrt_one_minus_alphas_cumprod, timesteps), (-1, 1, 1, 1))
        return (noisy_images - signal_rates * self.clean_images) / noise_rates


class LinearNetwork(keras.Model):
    """ε̂ = 0.5·x_t, whatever the timestep: simple enough to replay in numpy."""

    def call(self, inputs, training=False):
        noisy_images, _ = inputs
        return 0.5 * noisy_images


def linear_network_numpy(noisy_images):
    return 0.5 * noisy_images


def alphas_cumprod_float64(timesteps, beta_start=1e-4, beta_end=0.02):
    betas = beta_start + (beta_end - beta_start) * np.arange(timesteps) / (timesteps - 1)
    return betas, np.cumprod(1.0 - betas)


def seed_generator_noises(seed, count, shape):
    """The first `count` draws of SeedGenerator(seed): the noise both samplers must add."""
    generator = keras.random.SeedGenerator(seed)
    return [ops.convert_to_numpy(keras.random.normal(shape, seed=generator)).astype(np.float64)
            for _ in range(count)]


def ddpm_numpy(predict_noises, initial_noise, noises, timesteps):
    """DDPM Algorithm 2 in float64 from the formulas (eqs. 4, 6, 7), clipping x̂_0 to [-1, 1].

    Returns the final images and, per step, the (input, x̂_0) pair.
    """
    betas, alpha_bar = alphas_cumprod_float64(timesteps)
    alpha_bar_prev = np.append(1.0, alpha_bar[:-1])
    x = initial_noise.astype(np.float64)
    history = []
    for step_index, t in enumerate(range(timesteps - 1, -1, -1)):
        eps = predict_noises(x)
        x0 = np.clip(np.sqrt(1 / alpha_bar[t]) * x - np.sqrt(1 / alpha_bar[t] - 1) * eps, -1, 1)
        history.append((x, x0))
        mean = (betas[t] * np.sqrt(alpha_bar_prev[t]) / (1 - alpha_bar[t]) * x0
                + (1 - alpha_bar_prev[t]) * np.sqrt(1 - betas[t]) / (1 - alpha_bar[t]) * x)
        variance = betas[t] * (1 - alpha_bar_prev[t]) / (1 - alpha_bar[t])
        x = mean + (np.sqrt(variance) * noises[step_index] if t > 0 else 0.0)
    return x, history


def ddim_numpy(predict_noises, initial_noise, noises, timesteps, sequence, eta):
    """DDIM eqs. 12 and 16 on ᾱ_t in float64, with ε̂ re-derived from the clipped x̂_0."""
    _, alpha_bar = alphas_cumprod_float64(timesteps)
    x = initial_noise.astype(np.float64)
    for step_index, t in enumerate(sequence):
        a, a_next = alpha_bar[t], (alpha_bar[sequence[step_index + 1]]
                                   if step_index + 1 < len(sequence) else 1.0)
        eps = predict_noises(x)
        x0 = np.clip((x - np.sqrt(1 - a) * eps) / np.sqrt(a), -1, 1)
        eps = (x - np.sqrt(a) * x0) / np.sqrt(1 - a)
        sigma = eta * np.sqrt((1 - a_next) / (1 - a)) * np.sqrt(1 - a / a_next)
        x = np.sqrt(a_next) * x0 + np.sqrt(1 - a_next - sigma**2) * eps + sigma * noises[step_index]
    return x


@pytest.fixture(scope="module")
def unet_setup():
    """The quick-profile U-Net with 50 timesteps, jittered weights, and two noise images."""
    keras.utils.set_random_seed(0)
    config = DDPMConfig.from_profile("quick", timesteps=50)
    diffusion = GaussianDiffusion(config.beta_start, config.beta_end, config.timesteps)
    network = build_attention_unet(config)
    rng = np.random.default_rng(0)
    network.set_weights([weight + rng.normal(0.0, 0.05, weight.shape)
                         for weight in network.get_weights()])
    initial_noise = rng.standard_normal((2, config.image_size, config.image_size, 3))
    initial_noise = initial_noise.astype("float32")
    ddpm_images = DDPMSampler(diffusion).sample(network, initial_noise, seed=SEED)
    return diffusion, network, initial_noise, ddpm_images


@pytest.fixture(scope="module")
def small_noise():
    return np.random.default_rng(1).standard_normal(IMAGE_SHAPE).astype("float32")


def test_compiled_ddpm_equals_the_step_by_step_predict_loop(unet_setup):
    diffusion, network, initial_noise, ddpm_images = unet_setup
    reference = sample_step_by_step(network, diffusion, initial_noise, seed=SEED)
    assert np.abs(reference).mean() > 0.1  # the images are not trivially zero
    np.testing.assert_allclose(ddpm_images, reference, atol=1e-4)


def test_compiled_ddpm_at_1000_steps_equals_numpy(small_noise):
    diffusion = GaussianDiffusion(timesteps=1000)
    images = DDPMSampler(diffusion).sample(LinearNetwork(), small_noise, seed=SEED)
    noises = seed_generator_noises(SEED, 1000, IMAGE_SHAPE)
    expected, _ = ddpm_numpy(linear_network_numpy, small_noise, noises, 1000)
    np.testing.assert_allclose(images, expected, atol=1e-4)


def test_step_noise_is_the_seed_generator_sequence():
    expected = seed_generator_noises(SEED, 3, (4, 5))
    for step_index in range(3):
        noise = step_noise((4, 5), ops.convert_to_tensor(SEED), ops.convert_to_tensor(step_index))
        np.testing.assert_array_equal(ops.convert_to_numpy(noise), expected[step_index])


def test_trajectory_records_every_kth_step(small_noise):
    diffusion = GaussianDiffusion(timesteps=50)
    sampler = DDPMSampler(diffusion)
    images, trajectory = sampler.sample(LinearNetwork(), small_noise, seed=SEED,
                                        return_trajectory=True, record_every=20)
    np.testing.assert_array_equal(trajectory.steps, [0, 20, 40])
    np.testing.assert_array_equal(trajectory.timesteps, [49, 29, 9])
    assert trajectory.noisy_images.shape == trajectory.pred_images.shape == (3, *IMAGE_SHAPE)

    expected_images, history = ddpm_numpy(linear_network_numpy, small_noise,
                                          seed_generator_noises(SEED, 50, IMAGE_SHAPE), 50)
    np.testing.assert_array_equal(trajectory.noisy_images[0], small_noise)
    for record, step_index in enumerate(trajectory.steps):
        noisy_images, pred_images = history[step_index]
        np.testing.assert_allclose(trajectory.noisy_images[record], noisy_images, atol=1e-5)
        np.testing.assert_allclose(trajectory.pred_images[record], pred_images, atol=1e-5)
    np.testing.assert_allclose(images, expected_images, atol=1e-5)
    # recording does not change the result
    np.testing.assert_array_equal(images, sampler.sample(LinearNetwork(), small_noise, seed=SEED))


def test_ddim_with_every_timestep_and_eta_1_has_the_posterior_variance():
    betas, alpha_bar = alphas_cumprod_float64(1000)
    alpha_bar_prev = np.append(1.0, alpha_bar[:-1])
    posterior_variance = betas * (1 - alpha_bar_prev) / (1 - alpha_bar)  # β̃_t (DDPM eq. 7)
    sampler = DDIMSampler(GaussianDiffusion(timesteps=1000), num_steps=1000, eta=1.0)
    np.testing.assert_array_equal(sampler.timesteps, np.arange(999, -1, -1))
    np.testing.assert_allclose(sampler.sigmas**2, posterior_variance[sampler.timesteps],
                               rtol=1e-10, atol=1e-20)


def test_ddim_with_every_timestep_and_eta_1_is_ddpm(unet_setup):
    diffusion, network, initial_noise, ddpm_images = unet_setup
    sampler = DDIMSampler(diffusion, num_steps=diffusion.timesteps, eta=1.0)
    np.testing.assert_allclose(sampler.sample(network, initial_noise, seed=SEED), ddpm_images,
                               atol=1e-4)


def test_deterministic_ddim_ignores_the_seed(unet_setup):
    diffusion, network, initial_noise, _ = unet_setup
    sampler = DDIMSampler(diffusion, num_steps=10, eta=0.0)
    first = sampler.sample(network, initial_noise, seed=1)
    np.testing.assert_array_equal(first, sampler.sample(network, initial_noise, seed=2))
    np.testing.assert_array_equal(first, sampler.sample(network, initial_noise))


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_equals_numpy(small_noise, eta):
    diffusion = GaussianDiffusion(timesteps=100)
    sampler = DDIMSampler(diffusion, num_steps=7, eta=eta)
    images = sampler.sample(LinearNetwork(), small_noise, seed=SEED)
    noises = seed_generator_noises(SEED, 7, IMAGE_SHAPE)
    expected = ddim_numpy(linear_network_numpy, small_noise, noises, 100, sampler.timesteps, eta)
    np.testing.assert_allclose(images, expected, atol=1e-5)


def test_ddim_samplers_of_any_length_share_one_compiled_loop(small_noise):
    diffusion = GaussianDiffusion(timesteps=100)
    network = LinearNetwork()
    noises = seed_generator_noises(SEED, 100, IMAGE_SHAPE)
    DDIMSampler(diffusion, num_steps=2, eta=0.3).warm_up(network, small_noise)
    for num_steps, eta in [(1, 0.3), (4, 0.3), (100, 1.0)]:
        sampler = DDIMSampler(diffusion, num_steps=num_steps, eta=eta)
        expected = ddim_numpy(linear_network_numpy, small_noise, noises, 100, sampler.timesteps,
                              eta)
        np.testing.assert_allclose(sampler.sample(network, small_noise, seed=SEED), expected,
                                   atol=1e-5)
    assert [key[1] for key in Sampler._compiled_loops].count(id(network)) == 1
    # one tf.function, traced once: a retrace per step count would still be one cache entry
    assert sampler._compiled_loop(network, None).experimental_get_tracing_count() == 1


class DenseNetwork(keras.Model):
    """A network with weights, as a real one has: ε̂ = a dense layer over the channels of x_t."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3)

    def call(self, inputs, training=False):
        noisy_images, _ = inputs
        return self.dense(noisy_images)


def test_the_compiled_loop_does_not_keep_a_deleted_network_alive(small_noise):
    network = DenseNetwork()
    DDIMSampler(GaussianDiffusion(timesteps=100), num_steps=3).sample(network, small_noise)
    network_id, network_ref = id(network), weakref.ref(network)
    assert [key[1] for key in Sampler._compiled_loops].count(network_id) == 1
    del network
    gc.collect()
    assert network_ref() is None, "the sampler's cache keeps a deleted network alive"
    assert network_id not in [key[1] for key in Sampler._compiled_loops]


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_with_a_perfect_oracle_recovers_the_clean_images(small_noise, eta):
    diffusion = GaussianDiffusion(timesteps=1000)
    clean_images = np.random.default_rng(2).uniform(-1, 1, IMAGE_SHAPE).astype("float32")
    sampler = DDIMSampler(diffusion, num_steps=10, eta=eta)
    images, trajectory = sampler.sample(OracleNetwork(diffusion, clean_images), small_noise,
                                        seed=SEED, return_trajectory=True)
    np.testing.assert_allclose(images, clean_images, atol=1e-5)
    # the oracle's x̂_0 is exact at every step, even the first one from pure noise
    np.testing.assert_allclose(trajectory.pred_images,
                               np.broadcast_to(clean_images, trajectory.pred_images.shape),
                               atol=1e-4)


def test_no_noise_is_added_at_t_0():
    diffusion = GaussianDiffusion(timesteps=1000)
    rng = np.random.default_rng(3)
    noisy_images = rng.standard_normal(IMAGE_SHAPE).astype("float32")
    pred_noises = rng.standard_normal(IMAGE_SHAPE).astype("float32")
    timesteps = np.zeros(IMAGE_SHAPE[0], dtype="int32")
    posterior_mean, _, _ = diffusion.p_mean_variance(pred_noises, noisy_images, timesteps)
    for seed in (1, 2):
        np.testing.assert_array_equal(
            diffusion.p_sample(pred_noises, noisy_images, timesteps, seed=seed), posterior_mean)
    # the last DDPM step (t = 0) ignores the noise it is given, and returns x̂_0
    sampler = DDPMSampler(diffusion)
    last_step = sampler.coefficients_at(999, batch_size=IMAGE_SHAPE[0])
    next_noisy_images, pred_images = sampler.step(pred_noises, noisy_images, last_step,
                                                  100.0 * np.ones(IMAGE_SHAPE, "float32"))
    np.testing.assert_allclose(next_noisy_images, posterior_mean, atol=1e-6)
    np.testing.assert_allclose(next_noisy_images, pred_images, atol=1e-6)


def test_ddim_timesteps_start_at_the_last_timestep():
    np.testing.assert_array_equal(ddim_timesteps(1000, 1), [999])
    np.testing.assert_array_equal(ddim_timesteps(1000, 4), [999, 749, 499, 249])
    np.testing.assert_array_equal(ddim_timesteps(1000, 1000), np.arange(999, -1, -1))
    for num_steps in (3, 7, 50, 333, 999):
        timesteps = ddim_timesteps(1000, num_steps)
        assert len(timesteps) == num_steps and timesteps[0] == 999 and timesteps[-1] >= 0
        assert np.all(np.diff(timesteps) < 0)


@pytest.mark.parametrize("arguments, message", [
    (dict(num_steps=1001), "num_steps=1001"),
    (dict(num_steps=0), "num_steps=0"),
    (dict(num_steps=2.5), "num_steps=2.5"),
    (dict(eta=-0.1), "eta=-0.1"),
    (dict(eta=1.5), "eta=1.5"),
    (dict(jit_compile="yes"), "jit_compile='yes'"),
])
def test_bad_sampler_arguments_are_explained(arguments, message):
    with pytest.raises(ValueError, match=message):
        DDIMSampler(GaussianDiffusion(timesteps=1000), **arguments)


@pytest.mark.parametrize("arguments, message", [
    (dict(seed=-1), "seed=-1"),
    (dict(seed="a"), "seed='a'"),
    (dict(return_trajectory=True, record_every=0), "record_every=0"),
])
def test_bad_sample_arguments_are_explained(small_noise, arguments, message):
    sampler = DDPMSampler(GaussianDiffusion(timesteps=10))
    with pytest.raises(ValueError, match=message):
        sampler.sample(LinearNetwork(), small_noise, **arguments)


JAX_SCRIPT = textwrap.dedent("""
    import keras
    import numpy as np
    from diffusion_course.config import DDPMConfig
    from diffusion_course.gaussian_diffusion import GaussianDiffusion
    from diffusion_course.networks import build_attention_unet
    from diffusion_course.samplers import DDIMSampler, DDPMSampler, sample_step_by_step

    assert keras.backend.backend() == "jax"
    keras.utils.set_random_seed(0)
    config = DDPMConfig.from_profile("quick", timesteps=10)
    diffusion = GaussianDiffusion(config.beta_start, config.beta_end, config.timesteps)
    network = build_attention_unet(config)
    rng = np.random.default_rng(0)
    network.set_weights([w + rng.normal(0.0, 0.05, w.shape) for w in network.get_weights()])
    noise = rng.standard_normal((2, 16, 16, 3)).astype("float32")
    images = DDPMSampler(diffusion).sample(network, noise, seed=3)
    reference = sample_step_by_step(network, diffusion, noise, seed=3)
    assert np.abs(images - reference).max() < 1e-4, np.abs(images - reference).max()
    ddim = DDIMSampler(diffusion, num_steps=4, eta=0.0)
    images, trajectory = ddim.sample(network, noise, seed=1, return_trajectory=True)
    assert trajectory.noisy_images.shape == (4, 2, 16, 16, 3)
    assert np.array_equal(images, ddim.sample(network, noise, seed=2))

    # the continuous samplers, whose loops also carry x̂0 and past predictions
    from diffusion_course.continuous_samplers import make_sampler
    from diffusion_course.schedules import make_schedule

    class Ideal(keras.Model):  # ε̂ = n·x/(s²σ_d² + n²) for Gaussian data of σ_d = 0.5
        def call(self, inputs, training=False):
            images, variances = inputs
            return keras.ops.sqrt(variances) * images / ((1 - variances) * 0.25 + variances)

    ideal = Ideal()
    ideal([noise, np.ones((2, 1, 1, 1), "float32")])  # built: JAX samples with stateless_call
    results = {}
    for name, options in [("ddim", {}), ("second-order", {"alpha": 0.5}),
                          ("multistep", {"order": 3}), ("ddpm-large", {})]:
        sampler = make_sampler(name, make_schedule("cosine"), 8, **options)
        results[name], trajectory = sampler.sample(ideal, noise, seed=1, return_trajectory=True)
        assert trajectory.pred_images.shape == (8, 2, 16, 16, 3)
    # the deterministic samplers agree with each other to their accuracy at 8 steps
    assert np.abs(results["multistep"] - results["second-order"]).max() < 0.05
    print("jax ok")
""")


def test_samplers_run_on_jax():
    environment = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", JAX_SCRIPT], env=environment,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "jax ok" in result.stdout
