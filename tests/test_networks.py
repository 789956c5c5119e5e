import numpy as np
import pytest

from diffusion_course.config import DDIMConfig, DDPMConfig
from diffusion_course.networks import (
    build_attention_unet,
    build_residual_unet,
    copy_network,
    update_ema_weights,
)
from diffusion_course.networks.attention_unet import AttentionBlock
from diffusion_course.networks.embeddings import SinusoidalEmbedding


def random_images(size, batch=2, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, size, size, 3)).astype("float32")


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_residual_unet_output_shape_and_zero_start(profile):
    config = DDIMConfig.from_profile(profile)
    network = build_residual_unet(config)
    images = random_images(config.image_size)
    pred_noises = np.asarray(network([images, np.full((2, 1, 1, 1), 0.3, "float32")]))
    assert pred_noises.shape == images.shape
    # the zero-initialised last layer makes the untrained network predict exactly 0
    np.testing.assert_array_equal(pred_noises, 0.0)


def residual_unet_size(widths, block_depth, embedding_dims):
    """The weight count of the DDIM text's residual U-Net, in closed form, layer by layer."""

    def conv(inputs, outputs, kernel_size):  # kernel and bias
        return kernel_size * kernel_size * inputs * outputs + outputs

    def residual_block(inputs, width):  # BatchNormalization without center/scale: mean, variance
        projection = conv(inputs, width, 1) if inputs != width else 0
        return projection + 2 * inputs + conv(inputs, width, 3) + conv(width, width, 3)

    total = conv(3, widths[0], 1)  # the sinusoidal embedding has no weights
    channels, skips = widths[0] + embedding_dims, []
    for width in widths[:-1]:
        for _ in range(block_depth):
            total += residual_block(channels, width)
            channels = width
            skips.append(width)
    for _ in range(block_depth):
        total += residual_block(channels, widths[-1])
        channels = widths[-1]
    for width in reversed(widths[:-1]):
        for _ in range(block_depth):
            total += residual_block(channels + skips.pop(), width)  # concatenated with a skip
            channels = width
    return total + conv(channels, 3, 1)


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_residual_unet_has_the_size_of_its_architecture(profile):
    config = DDIMConfig.from_profile(profile)
    expected = residual_unet_size(config.widths, config.block_depth, config.embedding_dims)
    assert build_residual_unet(config).count_params() == expected


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_attention_unet_output_shape_and_near_zero_start(profile):
    config = DDPMConfig.from_profile(profile)
    network = build_attention_unet(config)
    images = random_images(config.image_size)
    pred_noises = np.asarray(network([images, np.array([0, 999], "int32")]))
    assert pred_noises.shape == images.shape
    assert np.abs(pred_noises).max() < 1e-3


@pytest.mark.parametrize("embedding_dims", [8, 32, 64])
def test_embedding_size_follows_the_configuration(embedding_dims):
    config = DDIMConfig.from_profile("quick", embedding_dims=embedding_dims)
    network = build_residual_unet(config)
    embedding = next(layer for layer in network.layers if isinstance(layer, SinusoidalEmbedding))
    assert embedding.output.shape[-1] == embedding_dims


def test_sinusoidal_embedding_matches_numpy():
    variances = np.array([0.0, 0.25, 1.0], "float32").reshape(-1, 1, 1, 1)
    frequencies = np.exp(np.linspace(np.log(1.0), np.log(1000.0), 8))
    angles = 2 * np.pi * frequencies * variances
    expected = np.concatenate([np.sin(angles), np.cos(angles)], axis=-1)
    # float32 angles reach 2π·1000, so the tolerance is that of float32 at that size
    np.testing.assert_allclose(SinusoidalEmbedding(16, 1000.0)(variances), expected, atol=2e-3)


def test_attention_contracts_queries_and_keys_over_channels():
    block = AttentionBlock(units=4, groups=2)
    x = random_images(3, batch=1)[..., :2].repeat(2, axis=-1)
    output = np.asarray(block(x))
    normalized = np.asarray(block.norm(x)).reshape(9, 4)
    q = normalized @ np.asarray(block.query.kernel) + np.asarray(block.query.bias)
    k = normalized @ np.asarray(block.key.kernel) + np.asarray(block.key.bias)
    v = normalized @ np.asarray(block.value.kernel) + np.asarray(block.value.bias)
    scores = q @ k.T / 2.0
    weights = np.exp(scores - scores.max(1, keepdims=True))
    weights /= weights.sum(1, keepdims=True)
    projected = (weights @ v) @ np.asarray(block.proj.kernel) + np.asarray(block.proj.bias)
    np.testing.assert_allclose(output.reshape(9, 4), x.reshape(9, 4) + projected, atol=1e-5)


@pytest.mark.parametrize("builder, config", [
    (build_residual_unet, DDIMConfig.from_profile("quick")),
    (build_attention_unet, DDPMConfig.from_profile("quick")),
])
def test_ema_copy_starts_equal_and_then_averages(builder, config):
    network = builder(config)
    ema_network = copy_network(network)
    for weight, ema_weight in zip(network.get_weights(), ema_network.get_weights()):
        np.testing.assert_array_equal(weight, ema_weight)

    before = [np.asarray(w) for w in ema_network.weights]
    for weight in network.trainable_weights:
        weight.assign(weight + 1.0)
    update_ema_weights(ema_network, network, decay=0.9)
    for weight, ema_weight, old in zip(network.weights, ema_network.weights, before):
        expected = 0.9 * old + 0.1 * np.asarray(weight) if weight.trainable else weight
        np.testing.assert_allclose(ema_weight, expected, atol=1e-6)
