"""The DDIM text's residual U-Net: residual blocks, skip connections, no attention.

The network takes the noisy images and their noise variances (noise_rate**2), and predicts the
noise component. Blocks are small closures, so the builder reads like the architecture diagram.
"""

import keras
from keras import layers

from diffusion_course.networks.embeddings import SinusoidalEmbedding


def ResidualBlock(width):
    def apply(x):
        input_width = x.shape[-1]
        residual = x if input_width == width else layers.Conv2D(width, kernel_size=1)(x)
        # center and scale are redundant before a convolution
        x = layers.BatchNormalization(center=False, scale=False)(x)
        x = layers.Conv2D(width, kernel_size=3, padding="same", activation="swish")(x)
        x = layers.Conv2D(width, kernel_size=3, padding="same")(x)
        return layers.Add()([x, residual])

    return apply


def DownBlock(width, block_depth):
    def apply(x, skips):
        for _ in range(block_depth):
            x = ResidualBlock(width)(x)
            skips.append(x)
        return layers.AveragePooling2D(pool_size=2)(x)

    return apply


def UpBlock(width, block_depth):
    def apply(x, skips):
        x = layers.UpSampling2D(size=2, interpolation="bilinear")(x)
        for _ in range(block_depth):
            x = layers.Concatenate()([x, skips.pop()])
            x = ResidualBlock(width)(x)
        return x

    return apply


def build_residual_unet(config, name="residual_unet"):
    """Builds the network for a `DDIMConfig`: widths, depth and embedding come from `config`."""
    noisy_images = keras.Input(shape=(config.image_size, config.image_size, 3))
    noise_variances = keras.Input(shape=(1, 1, 1))

    # float32 even under mixed precision: angles up to 2*pi*1000 need more than float16's
    # three significant digits
    embedding = SinusoidalEmbedding(config.embedding_dims, config.embedding_max_frequency,
                                    dtype="float32")(noise_variances)
    # the embedding enters only once, at full resolution; skips carry it onwards
    embedding = layers.UpSampling2D(size=config.image_size, interpolation="nearest")(embedding)

    x = layers.Conv2D(config.widths[0], kernel_size=1)(noisy_images)
    x = layers.Concatenate()([x, embedding])

    skips = []
    for width in config.widths[:-1]:
        x = DownBlock(width, config.block_depth)(x, skips)
    for _ in range(config.block_depth):
        x = ResidualBlock(config.widths[-1])(x)
    for width in reversed(config.widths[:-1]):
        x = UpBlock(width, config.block_depth)(x, skips)

    # zero-initialised: the untrained network predicts 0, the mean of its targets
    pred_noises = layers.Conv2D(3, kernel_size=1, kernel_initializer="zeros", dtype="float32")(x)
    return keras.Model([noisy_images, noise_variances], pred_noises, name=name)
