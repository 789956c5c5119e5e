"""The instructor's reference solution of the DDIM assignment (never released to students).

The graders compare every student function against these, and the TA tools train reference
checkpoints with them.
"""

import math

from keras import ops

from diffusion_course.ddim import DiffusionModel


def reference_diffusion_schedule(diffusion_times, min_signal_rate, max_signal_rate):
    """The cosine schedule bounded by signal rates (DDIM text; Nichol & Dhariwal 2021, eq. 17).

    angle(t) = arccos(max_signal_rate) + t * (arccos(min_signal_rate) - arccos(max_signal_rate)),
    signal_rate = cos(angle) and noise_rate = sin(angle), so signal² + noise² = 1.
    """
    start_angle = math.acos(max_signal_rate)
    end_angle = math.acos(min_signal_rate)
    diffusion_angles = start_angle + ops.cast(diffusion_times, "float32") * (end_angle - start_angle)
    return ops.sin(diffusion_angles), ops.cos(diffusion_angles)


class ReferenceDiffusionModel(DiffusionModel):
    """DDIM with deterministic sampling (eta = 0)."""

    def diffusion_schedule(self, diffusion_times):
        return reference_diffusion_schedule(
            diffusion_times, self.config.min_signal_rate, self.config.max_signal_rate)

    def denoise(self, noisy_images, noise_rates, signal_rates, training):
        # the exponential moving average weights are used at evaluation
        network = self.network if training else self.ema_network
        # the network sees the noise variance, not the time (DDIM text)
        pred_noises = network([noisy_images, noise_rates**2], training=training)
        # x̂0 = (x − n·ε̂) / s: the forward mix solved for the image
        pred_images = (noisy_images - noise_rates * pred_noises) / signal_rates
        return pred_noises, pred_images

    def reverse_diffusion(self, initial_noise, diffusion_steps):
        num_images = ops.shape(initial_noise)[0]
        step_size = 1.0 / diffusion_steps

        # important line: at the first step the "noisy image" is pure noise, but its signal
        # rate is assumed to be min_signal_rate, not zero
        next_noisy_images = initial_noise
        for step in range(diffusion_steps):
            noisy_images = next_noisy_images

            # separate the current noisy images into their components, with the EMA network
            diffusion_times = ops.ones((num_images, 1, 1, 1)) - step * step_size
            noise_rates, signal_rates = self.diffusion_schedule(diffusion_times)
            pred_noises, pred_images = self.denoise(
                noisy_images, noise_rates, signal_rates, training=False)

            # remix them at the next, lower noise level (DDIM eq. 12 with sigma = 0)
            next_diffusion_times = diffusion_times - step_size
            next_noise_rates, next_signal_rates = self.diffusion_schedule(next_diffusion_times)
            next_noisy_images = next_signal_rates * pred_images + next_noise_rates * pred_noises

        return pred_images
