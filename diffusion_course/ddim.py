"""The continuous-time DDIM model of the assignment (Song et al. 2021; the Keras DDIM text).

`DiffusionModel` holds everything but the three functions the students write:
`diffusion_schedule`, `denoise` and `reverse_diffusion`. A subclass supplies them: the student's
notebook, the instructor's reference in `autograder/`, or the library's own,
`ConfigurableDiffusionModel` (configurable_ddim.py), which adds the rest of the design space:
any schedule, prediction type and sampler. Graded runs hide the library's schedule,
parametrization and continuous-sampler modules from student code, so this module imports none of
them (samplers.py, whose initial noise it uses, stays visible).

Training is backend-agnostic Keras 3: a forward pass (`call`) is one denoising exercise, and
`compute_loss` reduces it to a scalar, the configured loss weighting (noise, image or velocity
error) under the configured loss (MAE or MSE); the defaults are the assignment's noise MAE.
Keras's own train step (TensorFlow or JAX) then differentiates it, so there is no
`tf.GradientTape` here.
"""

import keras
from keras import layers, ops

from diffusion_course import samplers
from diffusion_course.config import ConfigError
from diffusion_course.devices import (
    dtype_policy,
    network_dtype_policy,
    resolve_jit_compile,
    with_loss_scaling,
)
from diffusion_course.losses import LOSS_NAMES, diffusion_losses
from diffusion_course.networks import build_residual_unet, copy_network, update_ema_weights
from diffusion_course.variants import ASSIGNMENT_DESIGNS


class DiffusionModel(keras.Model):
    """A denoising diffusion model, with an EMA copy of its network used for sampling."""

    # whether the subclass's three functions follow the configuration's schedule and prediction
    # type; the assignment's implement only a variant's (variants.ASSIGNMENT_DESIGNS)
    follows_configured_design = False

    def __init__(self, config, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not self.follows_configured_design:
            _require_assignment_design(config)
        self.config = config
        image_shape = (config.image_size, config.image_size, 3)
        # images are normalised to zero mean and unit variance, exactly like the noise
        self.normalizer = keras.Sequential(
            [keras.Input(shape=image_shape), layers.Normalization(dtype="float32")],
            name="normalizer")
        # with mixed precision only the networks compute in float16; inputs, outputs and the
        # loss stay float32
        with dtype_policy(network_dtype_policy(config.mixed_precision)):
            self.network = build_residual_unet(config)
        self.ema_network = copy_network(self.network, name="ema_residual_unet")
        self.ema_network.trainable = False
        self.seed_generator = keras.random.SeedGenerator(seed)
        # n_loss, i_loss, v_loss: the errors of ε̂, x̂0 and v̂ under the configured loss
        self.loss_trackers = {kind: keras.metrics.Mean(name=name)
                              for kind, name in LOSS_NAMES.items()}

    # ---- the three functions of the assignment -------------------------------------------

    def diffusion_schedule(self, diffusion_times):
        """Maps diffusion times in [0, 1] to (noise_rates, signal_rates)."""
        raise NotImplementedError("diffusion_schedule is implemented in the assignment.")

    def denoise(self, noisy_images, noise_rates, signal_rates, training):
        """Separates noisy images into (pred_noises, pred_images)."""
        raise NotImplementedError("denoise is implemented in the assignment.")

    def reverse_diffusion(self, initial_noise, diffusion_steps):
        """Turns pure noise into images in `diffusion_steps` DDIM steps; returns pred_images."""
        raise NotImplementedError("reverse_diffusion is implemented in the assignment.")

    # ---- data scaling ------------------------------------------------------------------

    def adapt_normalizer(self, dataset):
        """Learns the per-channel mean and variance of the training images."""
        self.normalizer.layers[-1].adapt(dataset)

    def normalize(self, images):
        return self.normalizer(images)

    def denormalize(self, images):
        """Back to pixel values in [0, 1]."""
        normalization = self.normalizer.layers[-1]
        images = normalization.mean + images * normalization.variance**0.5
        return ops.clip(images, 0.0, 1.0)

    # ---- training ----------------------------------------------------------------------

    def compile(self, optimizer=None, **kwargs):
        """AdamW with the configuration's learning rate and weight decay, unless given."""
        if optimizer is None:
            optimizer = keras.optimizers.AdamW(learning_rate=self.config.learning_rate,
                                               weight_decay=self.config.weight_decay)
        optimizer = with_loss_scaling(optimizer, self.network)
        kwargs.setdefault("jit_compile", resolve_jit_compile(self.config.jit_compile))
        super().compile(optimizer=optimizer, **kwargs)
        # its moments now, not in the first train step: TensorFlow traces a step that creates
        # variables twice (half the first step's 2.8 s on a 2-core CPU)
        self.optimizer.build(self.trainable_variables)

    def call(self, images, training=False):
        """One denoising exercise: noise the images at random diffusion times, then separate them.

        Returns the tensors the loss needs. During training it also moves the EMA weights one
        step towards the weights this step starts from, so the EMA needs no backend-specific
        code after the optimizer (a lag of one step, negligible at decay 0.999).
        """
        images = self.normalize(images)
        batch_size = ops.shape(images)[0]
        noises = keras.random.normal(ops.shape(images), seed=self.seed_generator)
        # sample uniform random diffusion times
        diffusion_times = keras.random.uniform((batch_size, 1, 1, 1), seed=self.seed_generator)
        noise_rates, signal_rates = self.diffusion_schedule(diffusion_times)
        # mix the images with noises accordingly (DDIM eq. 4, continuous time)
        noisy_images = signal_rates * images + noise_rates * noises

        if training:
            update_ema_weights(self.ema_network, self.network, self.config.ema)
        pred_noises, pred_images = self.denoise(
            noisy_images, noise_rates, signal_rates, training=training)
        return {"images": images, "noises": noises, "noise_rates": noise_rates,
                "signal_rates": signal_rates, "pred_noises": pred_noises,
                "pred_images": pred_images}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The configured error (`loss_weighting`) under the configured loss, as a scalar.

        By default the mean absolute error of the predicted noise: the DDIM text recommends MAE
        over MSE on flowers. The other two errors are metrics only.
        """
        losses = diffusion_losses(y_pred["images"], y_pred["noises"], y_pred["pred_images"],
                                  y_pred["pred_noises"], y_pred["noise_rates"],
                                  y_pred["signal_rates"], self.config.loss)
        for kind, tracker in self.loss_trackers.items():
            tracker.update_state(losses[kind])
        return losses[self.config.loss_weighting]

    # ---- sampling ----------------------------------------------------------------------

    def generate(self, num_images, diffusion_steps, initial_noise=None, seed=None):
        """noise -> images -> denormalized images in [0, 1]."""
        initial_noise = self.initial_noise(num_images, initial_noise, seed)
        generated_images = self.reverse_diffusion(initial_noise, diffusion_steps)
        return self.denormalize(generated_images)

    def initial_noise(self, num_images, initial_noise=None, seed=None):
        """`initial_noise` if given, else standard normal noise of `num_images` images."""
        if initial_noise is None:
            return samplers.initial_noise(num_images, self.config.image_size, seed)
        return initial_noise

    def checkpoint_parts(self):
        """The named networks that a checkpoint stores."""
        return {"network": self.network, "ema_network": self.ema_network,
                "normalizer": self.normalizer}


def _require_assignment_design(config):
    chosen = (config.schedule, config.prediction)
    if chosen not in ASSIGNMENT_DESIGNS:
        designs = ", ".join(f"{schedule} with {prediction} prediction"
                            for schedule, prediction in ASSIGNMENT_DESIGNS)
        raise ConfigError(
            f"The assignment's DDIM functions implement a variant's schedule and prediction "
            f"({designs}), but the configuration asks for {chosen[0]} with {chosen[1]} "
            "prediction. Use the library's model for other designs "
            "(diffusion_course.models.build_model(\"ddim\", config)), or keep these settings.")
