"""GaussianDiffusion against closed-form float64 numpy (DDPM eqs. 4, 6, 7 and Algorithm 2)."""

import numpy as np
import pytest

from diffusion_course.gaussian_diffusion import GaussianDiffusion

T = 1000
TIMESTEPS = np.array([0, 1, 100, 500, 998, 999])


@pytest.fixture(scope="module")
def diffusion():
    return GaussianDiffusion(beta_start=1e-4, beta_end=0.02, timesteps=T)


@pytest.fixture(scope="module")
def closed_form():
    betas = 1e-4 + (0.02 - 1e-4) * np.arange(T, dtype=np.float64) / (T - 1)
    alpha_bar = np.cumprod(1.0 - betas)
    alpha_bar_prev = np.concatenate([[1.0], alpha_bar[:-1]])
    return betas, alpha_bar, alpha_bar_prev


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    x_start = rng.uniform(-1, 1, (len(TIMESTEPS), 8, 8, 3)).astype(np.float32)
    noise = rng.standard_normal(x_start.shape).astype(np.float32)
    return x_start, noise


def per_image(values):
    return values[TIMESTEPS].reshape(-1, 1, 1, 1)


def test_betas_are_computed_in_float64(diffusion, closed_form):
    betas, alpha_bar, _ = closed_form
    assert diffusion.betas_float64.dtype == np.float64
    np.testing.assert_allclose(diffusion.alphas_cumprod_float64, alpha_bar, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(diffusion.betas), betas, rtol=1e-6)


def test_q_mean_variance(diffusion, closed_form, images):
    _, alpha_bar, _ = closed_form
    x_start, _ = images
    mean, variance, log_variance = diffusion.q_mean_variance(x_start, TIMESTEPS)
    np.testing.assert_allclose(mean, np.sqrt(per_image(alpha_bar)) * x_start, atol=1e-6)
    np.testing.assert_allclose(variance, 1 - per_image(alpha_bar), rtol=1e-5)
    np.testing.assert_allclose(log_variance, np.log(1 - per_image(alpha_bar)), rtol=1e-4,
                               atol=1e-5)


def test_q_sample(diffusion, closed_form, images):
    _, alpha_bar, _ = closed_form
    x_start, noise = images
    expected = np.sqrt(per_image(alpha_bar)) * x_start + np.sqrt(1 - per_image(alpha_bar)) * noise
    np.testing.assert_allclose(diffusion.q_sample(x_start, TIMESTEPS, noise), expected, atol=1e-5)


def test_predict_start_from_noise_inverts_q_sample(diffusion, closed_form, images):
    _, alpha_bar, _ = closed_form
    x_start, noise = images
    x_t = np.sqrt(per_image(alpha_bar)) * x_start + np.sqrt(1 - per_image(alpha_bar)) * noise
    recovered = diffusion.predict_start_from_noise(x_t.astype(np.float32), TIMESTEPS, noise)
    # at t = 999 the recovery multiplies float32 error by sqrt(1/alpha_bar) ~ 156
    np.testing.assert_allclose(recovered, x_start, atol=5e-4)


def test_q_posterior(diffusion, closed_form, images):
    betas, alpha_bar, alpha_bar_prev = closed_form
    x_start, x_t = images
    coef1 = betas * np.sqrt(alpha_bar_prev) / (1 - alpha_bar)
    coef2 = (1 - alpha_bar_prev) * np.sqrt(1 - betas) / (1 - alpha_bar)
    variance = betas * (1 - alpha_bar_prev) / (1 - alpha_bar)
    mean, var, log_var = diffusion.q_posterior(x_start, x_t, TIMESTEPS)
    np.testing.assert_allclose(mean, per_image(coef1) * x_start + per_image(coef2) * x_t,
                               atol=1e-5)
    np.testing.assert_allclose(var, per_image(variance), rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(log_var, np.log(np.maximum(per_image(variance), 1e-20)),
                               rtol=1e-5)
    # t = 0: β̃_0 = β_0·(1 − ᾱ_{-1})/(1 − ᾱ_0) with ᾱ_{-1} = 1, exactly 0; its log is clipped
    assert TIMESTEPS[0] == 0 and np.all(np.asarray(var)[0] == 0.0)
    np.testing.assert_allclose(np.asarray(log_var)[0], np.log(1e-20), rtol=1e-6)


@pytest.mark.parametrize("clip_denoised", [True, False])
def test_p_mean_variance(diffusion, closed_form, images, clip_denoised):
    betas, alpha_bar, alpha_bar_prev = closed_form
    x_t, pred_noise = images
    x_recon = (np.sqrt(1 / per_image(alpha_bar)) * x_t
               - np.sqrt(1 / per_image(alpha_bar) - 1) * pred_noise)
    if clip_denoised:
        x_recon = np.clip(x_recon, -1, 1)
    coef1 = betas * np.sqrt(alpha_bar_prev) / (1 - alpha_bar)
    coef2 = (1 - alpha_bar_prev) * np.sqrt(1 - betas) / (1 - alpha_bar)
    expected_mean = per_image(coef1) * x_recon + per_image(coef2) * x_t
    mean, _, _ = diffusion.p_mean_variance(pred_noise, x_t, TIMESTEPS, clip_denoised)
    np.testing.assert_allclose(mean, expected_mean, atol=5e-4)


def test_p_sample_is_the_posterior_mean_plus_scaled_noise(diffusion, images):
    x_t, pred_noise = images
    mean, _, log_var = diffusion.p_mean_variance(pred_noise, x_t, TIMESTEPS)
    samples = np.stack([np.asarray(diffusion.p_sample(pred_noise, x_t, TIMESTEPS, seed=s))
                        for s in range(200)])
    # t = 0 adds no noise at all
    np.testing.assert_array_equal(samples[:, 0], np.broadcast_to(np.asarray(mean)[0],
                                                                 samples[:, 0].shape))
    # elsewhere the spread is exp(0.5 * log variance)
    spread = samples[:, 1:].std(axis=0).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(spread, np.exp(0.5 * np.asarray(log_var)[1:, 0, 0, 0]), rtol=0.05)
    np.testing.assert_allclose(samples[:, 1:].mean(axis=0), np.asarray(mean)[1:], atol=0.05)
