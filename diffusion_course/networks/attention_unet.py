"""The DDPM lab's U-Net: residual blocks conditioned on a timestep embedding, with self-attention
at the lower resolutions (Ho et al. 2020, Appendix B).

Fixed against the course's earlier tf.keras 2 DDPM lab (Shan-Hung Wu & DataLab, 2025): the
attention contracts q and
k over one shared channel index, the up path uses the `Concatenate` layer, residual blocks take
one list argument, and GroupNormalization comes from Keras itself.
"""

import keras
from keras import layers, ops

from diffusion_course.networks.embeddings import TimestepEmbedding


def kernel_init(scale):
    # DDPM's variance-scaling initialiser; scale 0 gives (almost) zero-initialised output layers
    return keras.initializers.VarianceScaling(max(scale, 1e-10), mode="fan_avg",
                                              distribution="uniform")


@keras.saving.register_keras_serializable(package="diffusion_course")
class AttentionBlock(layers.Layer):
    """Single-head self-attention over all pixels, added back to the input as a residual."""

    def __init__(self, units, groups=8, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.groups = groups
        # the sublayers share this block's dtype policy, also when a clone rebuilds it
        policy = self.dtype_policy
        self.norm = layers.GroupNormalization(groups=groups, dtype=policy)
        self.query = layers.Dense(units, kernel_initializer=kernel_init(1.0), dtype=policy)
        self.key = layers.Dense(units, kernel_initializer=kernel_init(1.0), dtype=policy)
        self.value = layers.Dense(units, kernel_initializer=kernel_init(1.0), dtype=policy)
        self.proj = layers.Dense(units, kernel_initializer=kernel_init(0.0), dtype=policy)

    def build(self, input_shape):
        projected_shape = (*input_shape[:-1], self.units)
        self.norm.build(input_shape)
        for dense in (self.query, self.key, self.value):
            dense.build(input_shape)
        self.proj.build(projected_shape)

    def call(self, inputs):
        height, width = ops.shape(inputs)[1], ops.shape(inputs)[2]
        scale = ops.cast(self.units, self.compute_dtype) ** -0.5

        normalized = self.norm(inputs)
        queries, keys, values = self.query(normalized), self.key(normalized), self.value(normalized)

        # every pixel (h, w) attends to every pixel (H, W); the channel index c is contracted
        scores = ops.einsum("bhwc,bHWc->bhwHW", queries, keys) * scale
        scores = ops.reshape(scores, (-1, height, width, height * width))
        # float32 even under mixed precision: a float16 sum over all pixels loses precision
        weights = ops.softmax(ops.cast(scores, "float32"), axis=-1)
        weights = ops.reshape(ops.cast(weights, self.compute_dtype),
                              (-1, height, width, height, width))
        attended = ops.einsum("bhwHW,bHWc->bhwc", weights, values)
        return inputs + self.proj(attended)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "groups": self.groups}


def ResidualBlock(width, groups):
    def apply(inputs):
        x, time_embedding = inputs
        input_width = x.shape[-1]
        residual = x if input_width == width else layers.Conv2D(
            width, kernel_size=1, kernel_initializer=kernel_init(1.0))(x)

        # the timestep enters every block as a per-channel bias
        time_bias = layers.Activation("swish")(time_embedding)
        time_bias = layers.Dense(width, kernel_initializer=kernel_init(1.0))(time_bias)
        time_bias = layers.Reshape((1, 1, width))(time_bias)

        x = layers.GroupNormalization(groups=groups)(x)
        x = layers.Activation("swish")(x)
        x = layers.Conv2D(width, 3, padding="same", kernel_initializer=kernel_init(1.0))(x)
        x = layers.Add()([x, time_bias])
        x = layers.GroupNormalization(groups=groups)(x)
        x = layers.Activation("swish")(x)
        x = layers.Conv2D(width, 3, padding="same", kernel_initializer=kernel_init(0.0))(x)
        return layers.Add()([x, residual])

    return apply


def DownSample(width):
    def apply(x):
        return layers.Conv2D(width, 3, strides=2, padding="same",
                             kernel_initializer=kernel_init(1.0))(x)

    return apply


def UpSample(width):
    def apply(x):
        x = layers.UpSampling2D(size=2, interpolation="nearest")(x)
        return layers.Conv2D(width, 3, padding="same", kernel_initializer=kernel_init(1.0))(x)

    return apply


def TimeMLP(units):
    def apply(x):
        x = layers.Dense(units, activation="swish", kernel_initializer=kernel_init(1.0))(x)
        return layers.Dense(units, kernel_initializer=kernel_init(1.0))(x)

    return apply


def build_attention_unet(config, name="attention_unet"):
    """Builds the network for a `DDPMConfig`; inputs are images and integer timesteps."""
    widths, groups = config.widths, config.norm_groups
    images = keras.Input(shape=(config.image_size, config.image_size, 3), name="image_input")
    timesteps = keras.Input(shape=(), dtype="int32", name="time_input")

    x = layers.Conv2D(widths[0], 3, padding="same", kernel_initializer=kernel_init(1.0))(images)
    time_embedding = TimestepEmbedding(config.time_embedding_dims)(timesteps)
    time_embedding = TimeMLP(config.time_embedding_dims)(time_embedding)

    skips = [x]
    for level, width in enumerate(widths):
        for _ in range(config.num_res_blocks):
            x = ResidualBlock(width, groups)([x, time_embedding])
            if config.has_attention[level]:
                x = AttentionBlock(width, groups)(x)
            skips.append(x)
        if level != len(widths) - 1:
            x = DownSample(width)(x)
            skips.append(x)

    x = ResidualBlock(widths[-1], groups)([x, time_embedding])
    x = AttentionBlock(widths[-1], groups)(x)
    x = ResidualBlock(widths[-1], groups)([x, time_embedding])

    for level in reversed(range(len(widths))):
        for _ in range(config.num_res_blocks + 1):
            x = layers.Concatenate(axis=-1)([x, skips.pop()])
            x = ResidualBlock(widths[level], groups)([x, time_embedding])
            if config.has_attention[level]:
                x = AttentionBlock(widths[level], groups)(x)
        if level != 0:
            x = UpSample(widths[level])(x)

    x = layers.GroupNormalization(groups=groups)(x)
    x = layers.Activation("swish")(x)
    pred_noises = layers.Conv2D(3, 3, padding="same", kernel_initializer=kernel_init(0.0),
                                dtype="float32")(x)
    return keras.Model([images, timesteps], pred_noises, name=name)
