"""Sinusoidal embeddings of a scalar noise level or timestep (Vaswani et al. 2017, section 3.5)."""

import math

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="diffusion_course")
class SinusoidalEmbedding(layers.Layer):
    """Embeds the noise variance of shape (batch, 1, 1, 1) as (batch, 1, 1, embedding_dims).

    The frequencies are spaced geometrically from 1 to `max_frequency`: the minimum of 1 matches
    the range [0, 1] of the noise variance, and the maximum sets the finest change of noise level
    the network can resolve (DDIM text, "sinusoidal embedding").
    """

    def __init__(self, embedding_dims=32, max_frequency=1000.0, **kwargs):
        super().__init__(**kwargs)
        self.embedding_dims = embedding_dims
        self.max_frequency = max_frequency

    def call(self, noise_variances):
        frequencies = ops.exp(
            ops.linspace(0.0, math.log(self.max_frequency), self.embedding_dims // 2)
        )
        angular_speeds = ops.cast(2.0 * math.pi * frequencies, noise_variances.dtype)
        return ops.concatenate(
            [ops.sin(angular_speeds * noise_variances), ops.cos(angular_speeds * noise_variances)],
            axis=-1,
        )

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.embedding_dims)

    def get_config(self):
        return {**super().get_config(), "embedding_dims": self.embedding_dims,
                "max_frequency": self.max_frequency}


@keras.saving.register_keras_serializable(package="diffusion_course")
class TimestepEmbedding(layers.Layer):
    """Embeds integer timesteps of shape (batch,) as (batch, dims) (DDPM, Appendix B)."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        self.dims = dims

    def call(self, timesteps):
        half_dims = self.dims // 2
        exponent = -math.log(10000.0) / (half_dims - 1)
        frequencies = ops.exp(ops.arange(half_dims, dtype="float32") * exponent)
        angles = ops.cast(timesteps, "float32")[:, None] * frequencies[None, :]
        return ops.cast(ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1),
                        self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dims)

    def get_config(self):
        return {**super().get_config(), "dims": self.dims}
