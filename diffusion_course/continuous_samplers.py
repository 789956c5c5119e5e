"""Samplers of the continuous-time DDIM model: DDIM with η, second order, and multistep.

They share the interface and the compiled loop of samplers.py (`step_tables`, one compiled loop
per network, counter-based noise, trajectories), and take a schedule (schedules.py) and the
network's prediction type (parametrizations.py) instead of the discrete model's ᾱ tables:

    sampler = ContinuousDDIMSampler(schedule, diffusion_steps=20, eta=0.0)
    images = sampler.sample(model.ema_network, initial_noise, seed=42)

Step i goes from the diffusion time t = 1 − i/N to the next time t' = t − 1/N, as in the DDIM
text; n, s are the noise and signal rates at t, and n', s' at t'. Every rate is computed once,
in float64, into the step tables. As in the DDIM text, a run returns the last predicted image
x̂0; `probability_flow` returns the noisy images at t = 0 instead, where the deterministic
samplers' ODE ends (the convergence tests measure them).

In the variables x̄ = x/s and σ̄ = n/s, deterministic DDIM is Euler's method for the probability-
flow ODE dx̄/dσ̄ = ε̂ (Song et al. 2021, eq. 14); the second-order and multistep samplers replace
ε̂ by a better average of ε̂ over the step.
"""

import numpy as np
from keras import ops

from diffusion_course.config import PREDICTIONS
from diffusion_course.parametrizations import convert
from diffusion_course.samplers import Sampler

# the step tables are padded to this length, so any number of steps up to it shares one loop
MAX_DIFFUSION_STEPS = 1000
# Adams–Bashforth coefficients of ε̂ at the current and past steps, oldest first
ADAMS_BASHFORTH = {
    1: [1.0],
    2: [-1.0 / 2, 3.0 / 2],
    3: [5.0 / 12, -16.0 / 12, 23.0 / 12],
    4: [-9.0 / 24, 37.0 / 24, -59.0 / 24, 55.0 / 24],
    5: [251.0 / 720, -1274.0 / 720, 2616.0 / 720, -2774.0 / 720, 1901.0 / 720],
}
SAMPLER_NAMES = ("ddim", "ddpm-vp", "ddpm-large", "second-order", "multistep")


class ContinuousSampler(Sampler):
    """What the continuous samplers share: the times and rates of the steps, and the network's
    prediction turned into (ε̂, x̂0).

    The loop carries the last x̂0 (what `sample` returns) and, for multistep, past ε̂'s.
    """

    adds_noise = False
    # network evaluations per step
    evaluations_per_step = 1

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
        # the diffusion times of the steps, 1, 1 − Δ, ..., Δ, and of the next ones, down to 0
        self.step_size = 1.0 / diffusion_steps
        self.timesteps = 1.0 - np.arange(diffusion_steps) * self.step_size
        self.next_times = self.timesteps - self.step_size
        self.noise_rates, self.signal_rates = self.rates_at(self.timesteps)
        self.next_noise_rates, self.next_signal_rates = self.rates_at(self.next_times)

    @property
    def table_length(self):
        return MAX_DIFFUSION_STEPS

    @property
    def network_evaluations(self):
        """The cost of a run: the number of times it calls the network."""
        return self.evaluations_per_step * self.num_steps

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


def remix(pred_noises, noisy_images, noise_rates, signal_rates, next_noise_rates,
          next_signal_rates):
    """One deterministic DDIM step with ε̂: x̂0 = (x − n·ε̂)/s, then x' = s'·x̂0 + n'·ε̂.
    Returns (x', x̂0)."""
    pred_images = (noisy_images - noise_rates * pred_noises) / signal_rates
    return next_signal_rates * pred_images + next_noise_rates * pred_noises, pred_images


class SecondOrderSampler(ContinuousSampler):
    """The generic second-order Runge–Kutta method (Karras et al. 2022, EDM, Algorithm 2 with
    α): α = 0.5 is the midpoint rule, α = 1 Heun's method. Two network evaluations per step."""

    evaluations_per_step = 2

    def __init__(self, schedule, diffusion_steps, prediction="noise", alpha=1.0,
                 jit_compile="auto", dtype="float32"):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha={alpha!r} is invalid: it must be in (0, 1] (0.5 is the "
                             "midpoint rule, 1 is Heun's method).")
        self.alpha = float(alpha)
        super().__init__(schedule, diffusion_steps, prediction, jit_compile, dtype)
        # the intermediate time t − α·Δ of every step
        self.middle_noise_rates, self.middle_signal_rates = self.rates_at(
            self.timesteps - self.alpha * self.step_size)

    def step_tables(self):
        steps = self.num_steps
        return {**super().step_tables(),
                "middle_noise_rates": self.middle_noise_rates,
                "middle_signal_rates": self.middle_signal_rates,
                # the weights of ε̂ at t and at t − αΔ: (1 − 1/(2α), 1/(2α))
                "first_weights": np.full(steps, 1.0 - 0.5 / self.alpha),
                "second_weights": np.full(steps, 0.5 / self.alpha)}

    def denoising_step(self, call_network, noisy_images, carried, coefficients, noises):
        rates = coefficients["noise_rates"], coefficients["signal_rates"]
        # 1. ε̂ at t
        pred_noises, _ = self.denoise(call_network, noisy_images, *rates)
        # 2. remix to the intermediate time t − αΔ (a DDIM step)
        middle_rates = coefficients["middle_noise_rates"], coefficients["middle_signal_rates"]
        middle_noisy_images, _ = remix(pred_noises, noisy_images, *rates, *middle_rates)
        # 3. ε̂_α: the network again, at t − αΔ
        middle_pred_noises, _ = self.denoise(call_network, middle_noisy_images, *middle_rates)
        # 4. ε̃ = (1 − 1/(2α))·ε̂ + (1/(2α))·ε̂_α (generic second-order Runge–Kutta)
        combined_noises = (coefficients["first_weights"] * pred_noises
                           + coefficients["second_weights"] * middle_pred_noises)
        # 5. x̂0 from ε̃, and the DDIM step to t' with ε̃
        next_noisy_images, pred_images = remix(
            combined_noises, noisy_images, *rates,
            coefficients["next_noise_rates"], coefficients["next_signal_rates"])
        return next_noisy_images, (pred_images,), pred_images


class MultistepSampler(ContinuousSampler):
    """Adams–Bashforth multistep of order 1–5 on ε̂ (as PNDM, Liu et al. 2022): the DDIM step
    takes a combination of this and the last order − 1 steps' ε̂. The first steps, whose
    history is shorter, use the order that it allows. One network evaluation per step."""

    def __init__(self, schedule, diffusion_steps, prediction="noise", order=2,
                 jit_compile="auto", dtype="float32"):
        if isinstance(order, bool) or order not in ADAMS_BASHFORTH:
            raise ValueError(f"order={order!r} is invalid: it must be an integer from 1 to 5 "
                             "(1 is DDIM).")
        self.order = int(order)
        super().__init__(schedule, diffusion_steps, prediction, jit_compile, dtype)

    def step_tables(self):
        # row i: the coefficients of the order min(i + 1, order), oldest first, after zeros for
        # the missing history
        weights = np.zeros((self.num_steps, self.order))
        for step_index in range(self.num_steps):
            coefficients = ADAMS_BASHFORTH[min(step_index + 1, self.order)]
            weights[step_index, self.order - len(coefficients):] = coefficients
        return {**super().step_tables(), "multistep_weights": weights}

    def trace_details(self):
        return (*super().trace_details(), self.order)

    def initial_carried(self, initial_noise):
        # the last x̂0, and ε̂ of the last order − 1 steps, oldest first
        return (*super().initial_carried(initial_noise),
                ops.zeros((self.order - 1, *ops.shape(initial_noise)), self.dtype))

    def denoising_step(self, call_network, noisy_images, carried, coefficients, noises):
        _, past_pred_noises = carried
        rates = coefficients["noise_rates"], coefficients["signal_rates"]
        # 1. ε̂ at t
        pred_noises, _ = self.denoise(call_network, noisy_images, *rates)
        # 2. ε̃ = Σ_j b_j·ε̂_j over this and the past steps (Adams–Bashforth)
        all_pred_noises = ops.concatenate([past_pred_noises, pred_noises[None]], axis=0)
        weights = ops.reshape(coefficients["multistep_weights"], (-1, 1, 1, 1, 1))
        combined_noises = ops.sum(weights * all_pred_noises, axis=0)
        # 3. x̂0 from ε̃, and the DDIM step to t' with ε̃
        next_noisy_images, pred_images = remix(
            combined_noises, noisy_images, *rates,
            coefficients["next_noise_rates"], coefficients["next_signal_rates"])
        # 4. the history moves on by one step
        return next_noisy_images, (pred_images, all_pred_noises[1:]), pred_images


def make_sampler(name, schedule, diffusion_steps, prediction="noise", eta=0.0, alpha=1.0,
                 order=2, jit_compile="auto"):
    """A sampler by the name `evaluate --sampler` uses:

    - "ddim": DDIM with `eta` (0: deterministic), variance preserving;
    - "ddpm-vp": η = 1, variance preserving (DDPM, posterior variance);
    - "ddpm-large": η = 1, large variance (DDPM, β);
    - "second-order": `alpha` (0.5 midpoint, 1 Heun), two network evaluations per step;
    - "multistep": Adams–Bashforth of `order` 1–5.
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
    raise ValueError(f"sampler={name!r} is unknown: choose one of {SAMPLER_NAMES}.")
