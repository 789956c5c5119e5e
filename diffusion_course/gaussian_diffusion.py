"""The DDPM lab's Gaussian diffusion utility (Ho et al. 2020), written with `keras.ops`.

All coefficient tables are computed once in float64 with numpy (the products of 1000 numbers
close to 1 lose precision in float32) and stored as float32 constants. Timesteps `t` are integer
tensors of shape (batch,); every method broadcasts the coefficient at `t` over the image axes.
"""

import numpy as np
from keras import ops, random


def linear_beta_schedule(beta_start=1e-4, beta_end=0.02, timesteps=1000):
    """β_t linearly spaced, in float64 (DDPM section 4)."""
    return np.linspace(beta_start, beta_end, timesteps, dtype=np.float64)


class GaussianDiffusion:
    """The forward process q and the reverse step p of a discrete-time DDPM."""

    def __init__(self, beta_start=1e-4, beta_end=0.02, timesteps=1000,
                 clip_min=-1.0, clip_max=1.0):
        self.timesteps = int(timesteps)
        self.clip_min = clip_min
        self.clip_max = clip_max

        betas = linear_beta_schedule(beta_start, beta_end, timesteps)
        alphas = 1.0 - betas
        alphas_cumprod = np.cumprod(alphas)
        alphas_cumprod_prev = np.append(1.0, alphas_cumprod[:-1])  # ᾱ_{t-1}, with ᾱ_{-1} = 1
        # β̃_t, the variance of q(x_{t-1} | x_t, x_0) (DDPM eq. 7); it is 0 at t = 0
        posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)

        # kept in float64 for tests and plots; the tensors below are float32
        self.betas_float64 = betas
        self.alphas_cumprod_float64 = alphas_cumprod

        tables = {
            "betas": betas,
            "alphas_cumprod": alphas_cumprod,
            "alphas_cumprod_prev": alphas_cumprod_prev,
            # 1 - ᾱ_t is formed in float64: in float32 it loses 4 digits at t = 0
            "one_minus_alphas_cumprod": 1.0 - alphas_cumprod,
            "sqrt_alphas_cumprod": np.sqrt(alphas_cumprod),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - alphas_cumprod),
            "log_one_minus_alphas_cumprod": np.log(1.0 - alphas_cumprod),
            "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / alphas_cumprod),
            "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / alphas_cumprod - 1.0),
            "posterior_variance": posterior_variance,
            # log β̃_t clipped at log(1e-20), because β̃_0 = 0
            "posterior_log_variance_clipped": np.log(np.maximum(posterior_variance, 1e-20)),
            # the two coefficients of the posterior mean μ̃_t (DDPM eq. 7)
            "posterior_mean_coef1": betas * np.sqrt(alphas_cumprod_prev) / (1.0 - alphas_cumprod),
            "posterior_mean_coef2": (1.0 - alphas_cumprod_prev) * np.sqrt(alphas)
            / (1.0 - alphas_cumprod),
        }
        for name, table in tables.items():
            setattr(self, name, ops.convert_to_tensor(table.astype(np.float32)))

    def _extract(self, table, t):
        """table[t] reshaped to (batch, 1, 1, 1), to broadcast over images."""
        return ops.reshape(ops.take(table, ops.cast(t, "int32")), (-1, 1, 1, 1))

    def q_mean_variance(self, x_start, t):
        """Mean, variance and log-variance of q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) (eq. 4)."""
        mean = self._extract(self.sqrt_alphas_cumprod, t) * x_start
        variance = self._extract(self.one_minus_alphas_cumprod, t)
        log_variance = self._extract(self.log_one_minus_alphas_cumprod, t)
        return mean, variance, log_variance

    def q_sample(self, x_start, t, noise):
        """Diffuses x_0 to x_t in one jump: √ᾱ_t x_0 + √(1 − ᾱ_t) ε (eq. 4)."""
        return (self._extract(self.sqrt_alphas_cumprod, t) * x_start
                + self._extract(self.sqrt_one_minus_alphas_cumprod, t) * noise)

    def predict_start_from_noise(self, x_t, t, noise):
        """x̂_0 = √(1/ᾱ_t) x_t − √(1/ᾱ_t − 1) ε̂: eq. 4 solved for x_0."""
        return (self._extract(self.sqrt_recip_alphas_cumprod, t) * x_t
                - self._extract(self.sqrt_recipm1_alphas_cumprod, t) * noise)

    def q_posterior(self, x_start, x_t, t):
        """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0) (eqs. 6–7)."""
        posterior_mean = (self._extract(self.posterior_mean_coef1, t) * x_start
                          + self._extract(self.posterior_mean_coef2, t) * x_t)
        posterior_variance = self._extract(self.posterior_variance, t)
        posterior_log_variance = self._extract(self.posterior_log_variance_clipped, t)
        return posterior_mean, posterior_variance, posterior_log_variance

    def p_mean_variance(self, pred_noise, x, t, clip_denoised=True):
        """The reverse step's mean and variance: the posterior around the predicted x_0."""
        x_recon = self.predict_start_from_noise(x, t, pred_noise)
        if clip_denoised:
            x_recon = ops.clip(x_recon, self.clip_min, self.clip_max)
        return self.q_posterior(x_recon, x, t)

    def p_sample(self, pred_noise, x, t, clip_denoised=True, seed=None):
        """One ancestral step x_t -> x_{t-1} (Algorithm 2); no noise is added at t = 0."""
        model_mean, _, model_log_variance = self.p_mean_variance(
            pred_noise, x, t, clip_denoised=clip_denoised)
        noise = random.normal(ops.shape(x), dtype=x.dtype, seed=seed)
        nonzero_mask = ops.reshape(ops.cast(ops.not_equal(t, 0), x.dtype), (-1, 1, 1, 1))
        return model_mean + nonzero_mask * ops.exp(0.5 * model_log_variance) * noise
