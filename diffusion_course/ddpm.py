"""The lab's discrete-time DDPM (Ho et al. 2020): the attention U-Net trained to predict noise.

As in `ddim.py`, a forward pass is one denoising exercise and `compute_loss` reduces it to a
scalar, so Keras's own train step does the rest on any backend. Sampling lives in `samplers.py`.
"""

import keras
from keras import ops

from diffusion_course.devices import (
    dtype_policy,
    network_dtype_policy,
    resolve_jit_compile,
    with_loss_scaling,
)
from diffusion_course.gaussian_diffusion import GaussianDiffusion
from diffusion_course.networks import build_attention_unet, copy_network, update_ema_weights


class DDPMModel(keras.Model):
    """Trains `network` on images in [-1, 1]; `ema_network` is its moving average."""

    def __init__(self, config, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.diffusion = GaussianDiffusion(
            beta_start=config.beta_start, beta_end=config.beta_end, timesteps=config.timesteps,
            clip_min=config.clip_min, clip_max=config.clip_max)
        # with mixed precision only the network computes in float16 (see ddim.py)
        with dtype_policy(network_dtype_policy(config.mixed_precision)):
            self.network = build_attention_unet(config)
        self.ema_network = copy_network(self.network, name="ema_attention_unet")
        self.ema_network.trainable = False
        self.seed_generator = keras.random.SeedGenerator(seed)

    def compile(self, optimizer=None, **kwargs):
        """Adam with the configuration's learning rate (DDPM paper), unless given."""
        if optimizer is None:
            optimizer = keras.optimizers.Adam(learning_rate=self.config.learning_rate)
        optimizer = with_loss_scaling(optimizer, self.network)
        kwargs.setdefault("jit_compile", resolve_jit_compile(self.config.jit_compile))
        super().compile(optimizer=optimizer, **kwargs)
        # its moments now, not in the first train step: TensorFlow traces a step that creates
        # variables twice (half the first step's 2.8 s on a 2-core CPU)
        self.optimizer.build(self.trainable_variables)

    def call(self, images, training=False):
        """Algorithm 1 of DDPM, one batch: noise the images at random timesteps, predict it."""
        batch_size = ops.shape(images)[0]
        # 1. sample timesteps uniformly from {0, ..., T-1}
        timesteps = keras.random.randint((batch_size,), 0, self.config.timesteps,
                                         dtype="int32", seed=self.seed_generator)
        # 2. sample the noise and 3. diffuse the images in one jump (eq. 4)
        noises = keras.random.normal(ops.shape(images), seed=self.seed_generator)
        noisy_images = self.diffusion.q_sample(images, timesteps, noises)

        if training:
            # moves the EMA towards the weights this step starts from (see ddim.py)
            update_ema_weights(self.ema_network, self.network, self.config.ema)
        # 4. predict the noise from the noisy images and their timesteps
        pred_noises = self.network([noisy_images, timesteps], training=training)
        return {"noises": noises, "pred_noises": pred_noises}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Mean squared error of the predicted noise: the simplified objective (eq. 14)."""
        return ops.mean(ops.square(y_pred["noises"] - y_pred["pred_noises"]))

    def checkpoint_parts(self):
        """The named networks that a checkpoint stores."""
        return {"network": self.network, "ema_network": self.ema_network}
