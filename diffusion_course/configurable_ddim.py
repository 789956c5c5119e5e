"""The library's DDIM model: the assignment's three functions, and every choice of the design space.

`ConfigurableDiffusionModel` is `DiffusionModel` (ddim.py) with the three functions that the
students write in the assignment, taken from the library and from the configuration:

- `diffusion_schedule`: the schedule that `config.schedule` names (schedules.py);
- `denoise`: the network's prediction (`config.prediction`: noise, image or velocity) turned
  into (ε̂, x̂0) (parametrizations.py);
- `reverse_diffusion`: deterministic DDIM (continuous_samplers.py).

`generate` takes any of the continuous samplers by name. The TA commands (train, sample,
evaluate) build this model; with the default configuration it is the assignment's model, and a
test checks that it agrees with the instructor's solution.

    model = ConfigurableDiffusionModel(DDIMConfig.from_profile("quick", prediction="velocity"))
    images = model.generate(16, diffusion_steps=8, sampler="multistep", order=3)
"""

from diffusion_course.continuous_samplers import make_sampler
from diffusion_course.ddim import DiffusionModel
from diffusion_course.parametrizations import convert
from diffusion_course.schedules import schedule_from_config


class ConfigurableDiffusionModel(DiffusionModel):
    """DDIM with the configuration's schedule, prediction type and loss, and any sampler."""

    follows_configured_design = True

    def __init__(self, config, seed=None, **kwargs):
        super().__init__(config, seed=seed, **kwargs)
        self.schedule = schedule_from_config(config)

    def diffusion_schedule(self, diffusion_times):
        """Diffusion times in [0, 1] -> (noise_rates, signal_rates) of the configured schedule."""
        return self.schedule.rates(diffusion_times)

    def denoise(self, noisy_images, noise_rates, signal_rates, training):
        """Noisy images and their rates -> (pred_noises, pred_images)."""
        # the exponential moving average weights are used at evaluation
        network = self.network if training else self.ema_network
        # the network takes the noise variance, and predicts the configured quantity
        predicted = network([noisy_images, noise_rates**2], training=training)
        converted = convert(self.config.prediction, predicted, noisy_images, noise_rates,
                            signal_rates)
        return converted["noise"], converted["image"]

    def sampler(self, name, diffusion_steps, **options):
        """A sampler of continuous_samplers.py for this model's schedule and prediction type:
        "ddim" (with `eta`), "ddpm-vp", "ddpm-large", "second-order" (`alpha`) or "multistep"
        (`order`)."""
        return make_sampler(name, self.schedule, diffusion_steps, self.config.prediction,
                            **options)

    def reverse_diffusion(self, initial_noise, diffusion_steps):
        """Pure noise -> the predicted images after `diffusion_steps` deterministic DDIM steps."""
        return self.sampler("ddim", diffusion_steps).sample(self.ema_network, initial_noise)

    def generate(self, num_images, diffusion_steps, initial_noise=None, seed=None,
                 sampler="ddim", **options):
        """noise -> images -> denormalized images in [0, 1], with the sampler called `sampler`
        (see `sampler`); `seed` also seeds the noise of the stochastic samplers."""
        initial_noise = self.initial_noise(num_images, initial_noise, seed)
        generated_images = self.sampler(sampler, diffusion_steps, **options).sample(
            self.ema_network, initial_noise, seed=seed)
        return self.denormalize(generated_images)
