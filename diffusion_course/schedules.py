"""Noise schedules of continuous-time diffusion: diffusion times -> (noise_rates, signal_rates).

A noisy image is x = signal_rate·x0 + noise_rate·ε with signal_rate² + noise_rate² = 1. The
diffusion time t runs from 0 (almost clean) to 1 (almost pure noise), and a schedule says how
fast the noise grows in between. Each schedule is a small object with one method:

    schedule = make_schedule("cosine", start_log_snr=2.5, end_log_snr=-7.5)
    noise_rates, signal_rates = schedule.rates(diffusion_times)

The seven schedules of the extended DDIM codebase run between two log signal-to-noise ratios,
log-SNR = log(signal_rate² / noise_rate²): `start_log_snr` at t = 0 and `end_log_snr` at t = 1.
Each is a noise power p(t) = noise_rate², between p_start = 1/(1 + e^start_log_snr) and
p_end = 1/(1 + e^end_log_snr). The assignment's cosine schedule ("assignment-cosine") is the
same cosine, with its ends given as signal rates instead (the Keras DDIM text).

Every schedule computes in the dtype of its input, so the tests evaluate them in float64 and the
samplers build their step tables in float64. Where p(t) is near 1, the signal power 1 − p(t)
is computed on its own rather than as 1 − p(t), which would cancel in float32.
"""

import math
import numbers

from keras import ops

DEFAULT_START_LOG_SNR = 2.5
DEFAULT_END_LOG_SNR = -7.5


def noise_power_of(log_snr):
    """p = noise_rate² = 1/(1 + e^log-SNR), since signal_rate² + noise_rate² = 1."""
    return 1.0 / (1.0 + math.exp(log_snr))


def log_snr_of(signal_rate):
    """log(s²/(1 − s²)), +∞ for a signal rate of 1 (no noise at all)."""
    if signal_rate == 1.0:
        return math.inf
    return math.log(signal_rate**2) - math.log1p(-signal_rate**2)


def interpolate(start, end, diffusion_times):
    """start at t = 0, end at t = 1, linearly in between; exact at both ends, where start + t·(end
    − start) would lose float32 digits of a small `end` (the log signal power at t = 1)."""
    return (1.0 - diffusion_times) * start + diffusion_times * end


def powers_of_log(log_powers):
    """(e^l, 1 − e^l) for a log power l, the complement through expm1 (no cancellation)."""
    return ops.exp(log_powers), -ops.expm1(log_powers)


class Schedule:
    """A schedule between two log-SNRs. A subclass gives `powers(t)`: the noise power
    p(t) = noise_rate² and the signal power 1 − p(t), each computed without cancellation."""

    def __init__(self, start_log_snr=DEFAULT_START_LOG_SNR, end_log_snr=DEFAULT_END_LOG_SNR):
        if not (isinstance(start_log_snr, numbers.Real) and isinstance(end_log_snr, numbers.Real)
                and -math.inf < end_log_snr < start_log_snr):
            raise ValueError(
                f"start_log_snr={start_log_snr!r} and end_log_snr={end_log_snr!r} are invalid: "
                "they must be numbers with start_log_snr > end_log_snr, because t = 0 is the "
                "clean end (high signal-to-noise ratio) and t = 1 the noisy end; end_log_snr "
                "must be finite, so that some signal is left at t = 1. The defaults are "
                f"{DEFAULT_START_LOG_SNR} and {DEFAULT_END_LOG_SNR}.")
        self.start_log_snr = float(start_log_snr)
        self.end_log_snr = float(end_log_snr)
        self.start_noise_power = noise_power_of(self.start_log_snr)
        self.end_noise_power = noise_power_of(self.end_log_snr)

    def rates(self, diffusion_times):
        """Diffusion times (any shape) in [0, 1] -> (noise_rates, signal_rates), same shape."""
        noise_powers, signal_powers = self.powers(diffusion_times)
        return ops.sqrt(noise_powers), ops.sqrt(signal_powers)

    def powers(self, diffusion_times):
        raise NotImplementedError

    def __repr__(self):
        return (f"{type(self).__name__}(start_log_snr={self.start_log_snr}, "
                f"end_log_snr={self.end_log_snr})")


class LinearSchedule(Schedule):
    """p(t) = p_start + t·(p_end − p_start): the noise power grows linearly."""

    def powers(self, diffusion_times):
        noise_powers = interpolate(self.start_noise_power, self.end_noise_power, diffusion_times)
        signal_powers = interpolate(1.0 - self.start_noise_power, 1.0 - self.end_noise_power,
                                    diffusion_times)
        return noise_powers, signal_powers


class CosineSchedule(Schedule):
    """noise_rate = sin(angle), signal_rate = cos(angle), with the angle linear in t
    (Nichol & Dhariwal 2021, in continuous time). p(t) = sin²(b_s + t(b_e − b_s)), b = arcsin(√p).
    """

    def __init__(self, start_log_snr=DEFAULT_START_LOG_SNR, end_log_snr=DEFAULT_END_LOG_SNR):
        super().__init__(start_log_snr, end_log_snr)
        # tan(angle) = noise_rate / signal_rate = e^(−log-SNR / 2)
        self.start_angle = math.atan(math.exp(-self.start_log_snr / 2))
        self.end_angle = math.atan(math.exp(-self.end_log_snr / 2))

    def rates(self, diffusion_times):
        # sin and cos of the angle directly: exact where either rate is small
        angles = interpolate(self.start_angle, self.end_angle, diffusion_times)
        return ops.sin(angles), ops.cos(angles)


class AssignmentCosineSchedule(CosineSchedule):
    """The assignment's schedule (the Keras DDIM text): the cosine schedule from
    signal_rate = max_signal_rate at t = 0 to min_signal_rate at t = 1, angle = arccos(rate)."""

    def __init__(self, min_signal_rate=0.02, max_signal_rate=0.95):
        if not 0.0 < min_signal_rate < max_signal_rate <= 1.0:
            raise ValueError(
                f"min_signal_rate={min_signal_rate!r} and max_signal_rate={max_signal_rate!r} "
                "are invalid: they must satisfy 0 < min_signal_rate < max_signal_rate <= 1 (a "
                "signal rate of 0 would divide by zero when the image is predicted).")
        self.min_signal_rate = float(min_signal_rate)
        self.max_signal_rate = float(max_signal_rate)
        super().__init__(log_snr_of(self.max_signal_rate), log_snr_of(self.min_signal_rate))
        # the same angles as the log-SNR form, but as the DDIM text computes them
        self.start_angle = math.acos(self.max_signal_rate)
        self.end_angle = math.acos(self.min_signal_rate)

    def __repr__(self):
        return (f"{type(self).__name__}(min_signal_rate={self.min_signal_rate}, "
                f"max_signal_rate={self.max_signal_rate})")


class LogSnrLinearSchedule(Schedule):
    """The log-SNR λ falls linearly in t: p = 1/(1 + e^λ), 1 − p = 1/(1 + e^−λ)."""

    def powers(self, diffusion_times):
        log_snrs = interpolate(self.start_log_snr, self.end_log_snr, diffusion_times)
        return ops.sigmoid(-log_snrs), ops.sigmoid(log_snrs)


class LogNoiseLinearSchedule(Schedule):
    """log p linear in t: p = p_start·(p_end/p_start)^t."""

    def powers(self, diffusion_times):
        return powers_of_log(interpolate(math.log(self.start_noise_power),
                                         math.log(self.end_noise_power), diffusion_times))


class LogSignalLinearSchedule(Schedule):
    """log(1 − p) linear in t: 1 − p = (1 − p_start)·((1 − p_end)/(1 − p_start))^t."""

    def powers(self, diffusion_times):
        signal_powers, noise_powers = powers_of_log(interpolate(
            math.log1p(-self.start_noise_power), math.log1p(-self.end_noise_power),
            diffusion_times))
        return noise_powers, signal_powers


class NoiseStepLinearSchedule(Schedule):
    """p = p_end·(p_start/p_end)^((1 − t)²) (clear-diffusion-keras, schedule.py): the ratio of
    next-step to current noise power falls about linearly to 1 at t = 1, so the noise grows
    fast at first. log p runs linearly in (1 − t)², from log p_end at (1 − t)² = 0, which
    keeps the small signal power near t = 1 exact in float32."""

    def powers(self, diffusion_times):
        return powers_of_log(interpolate(math.log(self.end_noise_power),
                                         math.log(self.start_noise_power),
                                         (1.0 - diffusion_times) ** 2))


class SignalStepLinearSchedule(LogSignalLinearSchedule):
    """1 − p = (1 − p_start)·((1 − p_end)/(1 − p_start))^(t²) (clear-diffusion-keras,
    schedule.py): the ratio of next-step to current signal power is 1 at t = 0 and falls about
    linearly, so the signal fades slowly at first (like DDPM's linear β). log(1 − p) is linear
    in t²."""

    def powers(self, diffusion_times):
        return super().powers(diffusion_times**2)


# the names that configurations and the command line use; config.SCHEDULE_NAMES lists them too,
# because graded runs hide this module from the configuration (a test keeps both equal)
SCHEDULES = {
    "assignment-cosine": AssignmentCosineSchedule,
    "linear": LinearSchedule,
    "cosine": CosineSchedule,
    "log-snr-linear": LogSnrLinearSchedule,
    "log-noise-linear": LogNoiseLinearSchedule,
    "log-signal-linear": LogSignalLinearSchedule,
    "noise-step-linear": NoiseStepLinearSchedule,
    "signal-step-linear": SignalStepLinearSchedule,
}


def make_schedule(name, start_log_snr=DEFAULT_START_LOG_SNR, end_log_snr=DEFAULT_END_LOG_SNR,
                  min_signal_rate=0.02, max_signal_rate=0.95):
    """The schedule called `name`; the assignment's cosine takes the signal-rate bounds, every
    other schedule the log-SNR bounds."""
    if name not in SCHEDULES:
        raise ValueError(f"schedule={name!r} is unknown: choose one of {sorted(SCHEDULES)}.")
    if name == "assignment-cosine":
        return AssignmentCosineSchedule(min_signal_rate, max_signal_rate)
    return SCHEDULES[name](start_log_snr, end_log_snr)


def schedule_from_config(config):
    """The schedule a `DDIMConfig` names, with its bounds."""
    return make_schedule(config.schedule, config.start_log_snr, config.end_log_snr,
                         config.min_signal_rate, config.max_signal_rate)
