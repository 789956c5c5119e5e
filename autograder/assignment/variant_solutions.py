"""Each variant's solution: the solution notebook's answers, with the schedule and denoise of the
variant's family and target in place of the default's (never released to students).

The default variant's answers are the solution cells of `solutions/ddim/ddim.ipynb`; the others
differ only in the functions that their variant changes, so that these functions, and only
these, tell last term's solution from this term's. Read as text: no TensorFlow here.
"""

from autograder.assignment.solution_cells import solution_sources
from diffusion_course.variants import DEFAULT_VARIANT, variant, variant_of

SCHEDULE_SOURCES = {
    "log-snr-linear": '''def diffusion_schedule(self, diffusion_times):
    """Diffusion times (batch, 1, 1, 1) in [0, 1] -> (noise_rates, signal_rates)."""
    # the log signal-to-noise ratio log(s² / n²) at both ends, linear in t in between
    max_signal_power = self.config.max_signal_rate**2
    min_signal_power = self.config.min_signal_rate**2
    start_log_snr = ops.log(max_signal_power / (1.0 - max_signal_power))
    end_log_snr = ops.log(min_signal_power / (1.0 - min_signal_power))
    diffusion_times = ops.cast(diffusion_times, "float32")
    log_snrs = start_log_snr + diffusion_times * (end_log_snr - start_log_snr)
    # s² = sigmoid(λ) and n² = sigmoid(−λ): their sum is 1
    signal_rates = ops.sqrt(ops.sigmoid(log_snrs))
    noise_rates = ops.sqrt(ops.sigmoid(-log_snrs))
    return noise_rates, signal_rates
''',
    "log-signal-linear": '''def diffusion_schedule(self, diffusion_times):
    """Diffusion times (batch, 1, 1, 1) in [0, 1] -> (noise_rates, signal_rates)."""
    # the log signal power log(s²) at both ends, linear in t in between
    start_log_signal_power = ops.log(self.config.max_signal_rate**2)
    end_log_signal_power = ops.log(self.config.min_signal_rate**2)
    diffusion_times = ops.cast(diffusion_times, "float32")
    log_signal_powers = start_log_signal_power + diffusion_times * (
        end_log_signal_power - start_log_signal_power)
    signal_powers = ops.exp(log_signal_powers)
    signal_rates = ops.sqrt(signal_powers)
    noise_rates = ops.sqrt(1.0 - signal_powers)
    return noise_rates, signal_rates
''',
    "linear": '''def diffusion_schedule(self, diffusion_times):
    """Diffusion times (batch, 1, 1, 1) in [0, 1] -> (noise_rates, signal_rates)."""
    # the noise power n² = 1 − s² at both ends, linear in t in between
    start_noise_power = 1.0 - self.config.max_signal_rate**2
    end_noise_power = 1.0 - self.config.min_signal_rate**2
    diffusion_times = ops.cast(diffusion_times, "float32")
    noise_powers = start_noise_power + diffusion_times * (end_noise_power - start_noise_power)
    noise_rates = ops.sqrt(noise_powers)
    signal_rates = ops.sqrt(1.0 - noise_powers)
    return noise_rates, signal_rates
''',
}

DENOISE_SOURCES = {
    "image": '''def denoise(self, noisy_images, noise_rates, signal_rates, training):
    """Noisy images and their rates -> (pred_noises, pred_images)."""
    # the exponential moving average weights are used at evaluation
    network = self.network if training else self.ema_network
    # predict the image component, then calculate the noise component from it
    pred_images = network([noisy_images, noise_rates**2], training=training)
    pred_noises = (noisy_images - signal_rates * pred_images) / noise_rates
    return pred_noises, pred_images
''',
    "velocity": '''def denoise(self, noisy_images, noise_rates, signal_rates, training):
    """Noisy images and their rates -> (pred_noises, pred_images)."""
    # the exponential moving average weights are used at evaluation
    network = self.network if training else self.ema_network
    # predict the velocity v = s·ε − n·x0 (Salimans & Ho 2022, section 4); as s² + n² = 1,
    # both components follow from it
    pred_velocities = network([noisy_images, noise_rates**2], training=training)
    pred_images = signal_rates * noisy_images - noise_rates * pred_velocities
    pred_noises = noise_rates * noisy_images + signal_rates * pred_velocities
    return pred_noises, pred_images
''',
}


def variant_solution_sources(variant_name=None):
    """{function name: source} of a variant's solution (the course's variant when None)."""
    chosen = variant(variant_name)
    sources = dict(solution_sources())
    if chosen.schedule in SCHEDULE_SOURCES:
        sources["diffusion_schedule"] = SCHEDULE_SOURCES[chosen.schedule]
    if chosen.prediction in DENOISE_SOURCES:
        sources["denoise"] = DENOISE_SOURCES[chosen.prediction]
    return sources


def changed_functions(variant_name):
    """The functions whose answer differs from the default variant's."""
    default = variant_solution_sources(DEFAULT_VARIANT)
    chosen = variant_solution_sources(variant_name)
    return tuple(name for name in chosen if chosen[name] != default[name])


def config_variant_name(config):
    """The name of the variant that `config` has (its schedule and prediction)."""
    found = variant_of(config)
    if found is None:
        raise ValueError(f"no variant of the assignment has schedule={config.schedule!r} with "
                         f"prediction={config.prediction!r}: see diffusion_course/variants.py")
    return found.name


def solution_sources_for(config):
    """{name: source} of the solution of the variant that `config` has."""
    return variant_solution_sources(config_variant_name(config))
