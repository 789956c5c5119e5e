"""Samplers of the continuous-time DDIM model: DDIM with η, second order, and multistep.

They share the interface and the compiled loop of samplers.py (`step_tables`, one compiled loop
per network, counter-based noise, trajectories), and take a schedule (schedules.py) and the
network's prediction type (parametrizations.py) instead of the discrete model's ᾱ tables:

    sampler = ContinuousDDIMSampler(schedule, diffusion_steps=20, eta=0.0)
    images = sampler.sample(model.ema_network, initial_noise, seed=42)

Step i goes from the diffusion time t = 1 − i/N to the next time t' = t − 1/N, as in the DDIM
text (a multistep run of order k makes its first k − 1 steps shorter: multistep_weights.py);
n, s are the noise and signal rates at t, and n', s' at t'. Every rate is computed once,
in float64, into the step tables. As in the DDIM text, a run returns the last predicted image
x̂0; `probability_flow` returns the noisy images at t = 0 instead, where the deterministic
samplers' ODE ends (the convergence tests measure them).

In the variables x̄ = x/s and σ̄ = n/s, deterministic DDIM is Euler's method for the probability-
flow ODE dx̄/dσ̄ = ε̂ (Song et al. 2021, eq. 14). The second-order and multistep samplers take
the DDIM step with a better average x̃0 of the network's image predictions over the step,
weighted for the variable λ = log(s/n), in which the DDIM step is exact for a constant x̂0
(DPM-Solver++, Lu et al. 2022, arXiv:2211.01095). Averaging x̂0 rather than ε̂ matters at the
noisy end: there x̂0 = (x − n·ε̂)/s would multiply any difference between two ε̂'s by 1/s ≈ 50.
"""

import numpy as np
from keras import ops

from diffusion_course.config import (
    CONTINUOUS_SAMPLER_NAMES,
    MAX_DIFFUSION_STEPS,
    MAX_MULTISTEP_ORDER,
    PREDICTIONS,
)
from diffusion_course.multistep_weights import half_log_snrs, multistep_weights, start_up_times
from diffusion_course.parametrizations import convert
from diffusion_course.samplers import Sampler


class ContinuousSampler(Sampler):
    """What the continuous samplers share: the times and rates of the steps, and the network's
    prediction turned into (ε̂, x̂0).

    The loop carries the last x̂0 (what `sample` returns) and, for multistep, past ε̂'s.
    """

    adds_noise = False

    def __init__(self, schedule, diffusion_steps, prediction="noise", jit_compile="auto",
                 dtype="float32"):
        super().__init__(jit_compile)
        if (isinstance(diffusion_steps, bool) or not isinstance(diffusion_steps, (int, np.integer))
                or not 1 <= diffusion_steps <= MAX_DIFFUSION_STEPS):
            raise ValueError(f"diffusion_steps={diffusion_steps!r} is invalid: it must be an "
                             f"integer from 1 to {MAX_DIFFUSION_STEPS}.")
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction={prediction!r} is unknown: choose one of "
                             f"{PREDICTIONS}.")
        self.schedule = schedule
        self.prediction = prediction
        self.dtype = dtype
        # the diffusion times of the steps, from 1, and of the next ones, down to 0
        times = self.step_times(diffusion_steps)
        self.timesteps, self.next_times = times[:-1], times[1:]
        self.noise_rates, self.signal_rates = self.rates_at(self.timesteps)
        self.next_noise_rates, self.next_signal_rates = self.rates_at(self.next_times)
        # λ = log(s/n) at both ends of every step; +∞ where a schedule ends without noise
        self.log_snrs = half_log_snrs(self.noise_rates, self.signal_rates)
        self.next_log_snrs = half_log_snrs(self.next_noise_rates, self.next_signal_rates)

    def step_times(self, diffusion_steps):
        """1, 1 − Δ, ..., Δ, 0 with Δ = 1/N: equal steps in t, as in the DDIM text."""
        return np.linspace(1.0, 0.0, diffusion_steps + 1)

    @property
    def table_length(self):
        return MAX_DIFFUSION_STEPS

    def rates_at(self, diffusion_times):
        """(noise_rates, signal_rates) of the schedule, in float64."""
        return tuple(ops.convert_to_numpy(rates).astype(np.float64)
                     for rates in self.schedule.rates(np.asarray(diffusion_times, np.float64)))

    def step_tables(self):
        return {"noise_rates": self.noise_rates, "signal_rates": self.signal_rates,
                "next_noise_rates": self.next_noise_rates,
                "next_signal_rates": self.next_signal_rates}

    def trace_details(self):
        return (self.prediction,)

    def initial_carried(self, initial_noise):
        return (ops.zeros_like(initial_noise),)  # the last x̂0

    def final_images(self, loop_state):
        return loop_state[1]

    def probability_flow(self, network, initial_noise, seed=None):
        """The noisy images at t = 0 after all steps (the ODE's end for deterministic samplers),
        before the last x̂0 is taken."""
        return self._run_checked(network, initial_noise, seed, False, 1)[0]

    def denoise(self, call_network, noisy_images, noise_rates, signal_rates):
        """(ε̂, x̂0) of the network's prediction; the network takes the noise variance n²."""
        noise_variances = ops.broadcast_to(ops.square(noise_rates),
                                           (ops.shape(noisy_images)[0], 1, 1, 1))
        predicted = call_network([noisy_images, noise_variances])
        converted = convert(self.prediction, ops.cast(predicted, noisy_images.dtype),
                            noisy_images, noise_rates, signal_rates)
        return converted["noise"], converted["image"]


class ContinuousDDIMSampler(ContinuousSampler):
    """DDIM with stochasticity η ∈ [0, 1] (Song et al. 2021, eq. 16).

    η = 0 is deterministic DDIM. With η = 1 and `variance_preserving=True` each step is DDPM's
    posterior step ("fixed small" variance β̃); with `variance_preserving=False` it adds noise
    of DDPM's β instead ("fixed large", the extended codebase's DDPM).
    """

    def __init__(self, schedule, diffusion_steps, prediction="noise", eta=0.0,
                 variance_preserving=True, jit_compile="auto", dtype="float32"):
        super().__init__(schedule, diffusion_steps, prediction, jit_compile, dtype)
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta={eta!r} is invalid: it must be in [0, 1] (0 is deterministic "
                             "DDIM, 1 is DDPM; above 1 the noise exceeds the step's variance "
                             "budget).")
        self.eta = float(eta)
        self.variance_preserving = bool(variance_preserving)
        self.adds_noise = self.eta > 0.0
        # σ = η·(n'/n)·√(1 − s²/s'²) (DDIM eq. 16, with ᾱ = s²)
        self.sigmas = (self.eta * self.next_noise_rates / self.noise_rates
                       * np.sqrt(1.0 - self.signal_rates**2 / self.next_signal_rates**2))
        # the added noise: σ keeps the marginal variance; the large variance σ·n/n' = η·√β, with
        # β = 1 − s²/s'² (written without n', which is 0 where a schedule ends at no noise)
        self.noise_scales = (self.sigmas if self.variance_preserving else self.eta * np.sqrt(
            1.0 - self.signal_rates**2 / self.next_signal_rates**2))

    def step_tables(self):
        return {**super().step_tables(),
                # the weight of ε̂ in "the direction pointing to x_t" (DDIM eq. 12)
                "direction_coefs": np.sqrt(np.maximum(
                    self.next_noise_rates**2 - self.sigmas**2, 0.0)),
                "noise_scales": self.noise_scales}

    def denoising_step(self, call_network, noisy_images, carried, coefficients, noises):
        # 1. separate the noisy images into ε̂ and x̂0 (DDIM eq. 12, "predicted x0")
        pred_noises, pred_images = self.denoise(call_network, noisy_images,
                                                coefficients["noise_rates"],
                                                coefficients["signal_rates"])
        # 2. x' = s'·x̂0 + √(n'² − σ²)·ε̂ + σ_add·z (DDIM eqs. 12 and 16)
        next_noisy_images = (coefficients["next_signal_rates"] * pred_images
                             + coefficients["direction_coefs"] * pred_noises)
        if noises is not None:
            next_noisy_images = next_noisy_images + coefficients["noise_scales"] * noises
        return next_noisy_images, (pred_images,), pred_images


def corrected_ddim_step(pred_noises, pred_images, correction, noise_rates, signal_rates,
                        next_noise_rates, next_signal_rates):
    """The DDIM step with x̃0 = x̂0 + correction in place of x̂0: ε̃ = ε̂ − (s/n)·correction
    keeps x = s·x̃0 + n·ε̃, and x' = s'·x̃0 + n'·ε̃ (DDIM eq. 12). That is x' = (n'/n)·x +
    s'·(1 − e^−h)·x̃0 (DPM-Solver++, eq. 9), so the correction enters with a weight below s' and
    is never divided by s. With no correction it is exactly DDIM. Returns (x', x̃0)."""
    combined_images = pred_images + correction
    combined_noises = pred_noises - (signal_rates / noise_rates) * correction
    return next_signal_rates * combined_images + next_noise_rates * combined_noises, combined_images


def rates_of(log_snrs):
    """(n, s) at λ = log(s/n): n² = sigmoid(−2λ), s² = sigmoid(2λ)."""
    return (np.sqrt(1.0 / (1.0 + np.exp(2.0 * log_snrs))),
            np.sqrt(1.0 / (1.0 + np.exp(-2.0 * log_snrs))))


class SecondOrderSampler(ContinuousSampler):
    """Second order with an intermediate evaluation, DPM-Solver++(2S) (Lu et al. 2022,
    Algorithm 1) with r = α: a DDIM step to λ + α·h, the network again there, and the DDIM step
    with x̃0 = (1 − 1/(2α))·x̂0 + (1/(2α))·x̂0_α. α = 0.5 is the midpoint rule and α = 1 Heun's
    method (as in Karras et al. 2022, EDM, Algorithm 2). Two network evaluations per step,
    except a last step that ends without noise (λ' = +∞): it is a DDIM step, as EDM's
    Algorithm 2 makes its last step to σ = 0 an Euler step, so the network is never called at
    n = 0, where an image-predicting network's ε̂ = (x − s·x̂0)/n would divide by zero."""

    evaluations_per_step = 2

    def __init__(self, schedule, diffusion_steps, prediction="noise", alpha=1.0,
                 jit_compile="auto", dtype="float32"):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha={alpha!r} is invalid: it must be in (0, 1] (0.5 is the "
                             "midpoint rule, 1 is Heun's method).")
        self.alpha = float(alpha)
        super().__init__(schedule, diffusion_steps, prediction, jit_compile, dtype)
        self.corrects = np.isfinite(self.next_log_snrs)
        # the intermediate λ + α·h of every step (λ itself, unused, where λ' = +∞)
        finite_next_log_snrs = np.where(self.corrects, self.next_log_snrs, self.log_snrs)
        middle_log_snrs = self.log_snrs + self.alpha * (finite_next_log_snrs - self.log_snrs)
        self.middle_noise_rates, self.middle_signal_rates = rates_of(middle_log_snrs)

    @property
    def network_evaluations(self):
        return self.num_steps + int(np.count_nonzero(self.corrects))

    def step_tables(self):
        return {**super().step_tables(),
                "middle_noise_rates": self.middle_noise_rates,
                "middle_signal_rates": self.middle_signal_rates,
                # 1 where the step evaluates the network at λ + α·h, 0 where it is DDIM
                "corrects": self.corrects.astype(np.float64),
                "correction_weights": np.full(self.num_steps, 0.5 / self.alpha)}

    def denoising_step(self, call_network, noisy_images, carried, coefficients, noises):
        rates = coefficients["noise_rates"], coefficients["signal_rates"]
        next_rates = coefficients["next_noise_rates"], coefficients["next_signal_rates"]
        # 1. ε̂ and x̂0 at λ
        pred_noises, pred_images = self.denoise(call_network, noisy_images, *rates)

        def correction():
            # 2. the DDIM step to the intermediate λ + α·h
            middle_rates = (coefficients["middle_noise_rates"],
                            coefficients["middle_signal_rates"])
            middle_noisy_images, _ = corrected_ddim_step(
                pred_noises, pred_images, ops.zeros_like(pred_images), *rates, *middle_rates)
            # 3. x̂0_α: the network again, there
            _, middle_pred_images = self.denoise(call_network, middle_noisy_images,
                                                 *middle_rates)
            # 4. x̃0 − x̂0 = (1/(2α))·(x̂0_α − x̂0) (DPM-Solver++(2S) with r = α)
            return coefficients["correction_weights"] * (middle_pred_images - pred_images)

        # (a step that ends without noise skips 2–4: EDM Algorithm 2, "if σ_{i+1} ≠ 0")
        corrections = ops.cond(coefficients["corrects"] > 0, correction,
                               lambda: ops.zeros_like(pred_images))
        # 5. the DDIM step to λ' with x̃0
        next_noisy_images, combined_images = corrected_ddim_step(
            pred_noises, pred_images, corrections, *rates, *next_rates)
        return next_noisy_images, (combined_images,), combined_images


class MultistepSampler(ContinuousSampler):
    """Adams–Bashforth multistep of order k = 1–4 in λ = log(s/n) on the image predictions
    (DPM-Solver++ multistep, Lu et al. 2022, generalised to order k): the DDIM step takes the
    average x̃0 of this and the last k − 1 steps' x̂0, with weights computed for each step from
    its actual λ's (multistep_weights.py). The first k − 1 steps, whose history is shorter, are
    shorter too, so that the whole run converges with order k. Order 1 is DDIM. One network
    evaluation per step."""

    def __init__(self, schedule, diffusion_steps, prediction="noise", order=2,
                 jit_compile="auto", dtype="float32"):
        if order == MAX_MULTISTEP_ORDER + 1 and not isinstance(order, bool):
            raise ValueError(
                f"order={order} is not offered: a whole run of order 5 reaches float64's "
                "round-off before it converges with order 5, so the order cannot be verified, "
                "and float32 sampling could not have it. Use an order from 1 to "
                f"{MAX_MULTISTEP_ORDER}.")
        if (isinstance(order, bool) or not isinstance(order, (int, np.integer))
                or not 1 <= order <= MAX_MULTISTEP_ORDER):
            raise ValueError(f"order={order!r} is invalid: it must be an integer from 1 to "
                             f"{MAX_MULTISTEP_ORDER} (1 is DDIM).")
        self.order = int(order)
        end_noise_rate, _ = schedule.rates(np.float64(0.0))
        if self.order > 1 and float(end_noise_rate) == 0.0:
            raise ValueError(
                f"order={order} is unavailable on {schedule!r}: the schedule ends without noise "
                "(λ = log(s/n) = +∞ at t = 0), so the last step would integrate a polynomial "
                "through the past predictions over an infinite λ interval. Use order 1 (DDIM), "
                "or a schedule that keeps some noise at t = 0 (e.g. max_signal_rate=0.95).")
        super().__init__(schedule, diffusion_steps, prediction, jit_compile, dtype)

    def step_times(self, diffusion_steps):
        return start_up_times(lambda times: half_log_snrs(*self.rates_at(times)),
                              diffusion_steps, self.order)

    def step_tables(self):
        weights = multistep_weights(self.log_snrs, self.next_log_snrs, self.order)
        # the weights of the past predictions; this step's is 1 minus their sum
        return {**super().step_tables(), "past_weights": weights[:, :-1]}

    def trace_details(self):
        return (*super().trace_details(), self.order)

    def initial_carried(self, initial_noise):
        # the last x̂0, and x̂0 of the last k − 1 steps, oldest first
        return (*super().initial_carried(initial_noise),
                ops.zeros((self.order - 1, *ops.shape(initial_noise)), self.dtype))

    def denoising_step(self, call_network, noisy_images, carried, coefficients, noises):
        _, past_pred_images = carried
        rates = coefficients["noise_rates"], coefficients["signal_rates"]
        # 1. ε̂ and x̂0 at λ
        pred_noises, pred_images = self.denoise(call_network, noisy_images, *rates)
        # 2. x̃0 − x̂0 = Σ_j c_j·(x̂0_j − x̂0) over the past steps (since Σ c_j = 1)
        weights = ops.reshape(coefficients["past_weights"], (-1, 1, 1, 1, 1))
        corrections = ops.sum(weights * (past_pred_images - pred_images[None]), axis=0)
        # 3. the DDIM step to λ' with x̃0
        next_noisy_images, combined_images = corrected_ddim_step(
            pred_noises, pred_images, corrections, *rates,
            coefficients["next_noise_rates"], coefficients["next_signal_rates"])
        # 4. the history moves on by one step
        history = ops.concatenate([past_pred_images, pred_images[None]], axis=0)[1:]
        return next_noisy_images, (combined_images, history), combined_images


def make_sampler(name, schedule, diffusion_steps, prediction="noise", eta=0.0, alpha=1.0,
                 order=2, jit_compile="auto"):
    """A sampler by the name `evaluate --sampler` uses:

    - "ddim": DDIM with `eta` (0: deterministic), variance preserving;
    - "ddpm-vp": η = 1, variance preserving (DDPM, posterior variance);
    - "ddpm-large": η = 1, large variance (DDPM, β);
    - "second-order": `alpha` (0.5 midpoint, 1 Heun), two network evaluations per step;
    - "multistep": Adams–Bashforth in λ of `order` 1–4 (1 is DDIM).
    """
    common = dict(schedule=schedule, diffusion_steps=diffusion_steps, prediction=prediction,
                  jit_compile=jit_compile)
    if name == "ddim":
        return ContinuousDDIMSampler(eta=eta, **common)
    if name in ("ddpm-vp", "ddpm-large"):
        return ContinuousDDIMSampler(eta=1.0, variance_preserving=name == "ddpm-vp", **common)
    if name == "second-order":
        return SecondOrderSampler(alpha=alpha, **common)
    if name == "multistep":
        return MultistepSampler(order=order, **common)
    raise ValueError(f"sampler={name!r} is unknown: choose one of {CONTINUOUS_SAMPLER_NAMES}.")
