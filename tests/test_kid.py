"""KID: the estimator, the two feature extractors, the missing-weights path and the metric.

The offline features are judged on real photos that scikit-image and scikit-learn ship: tiles
of the same photos must give a small KID, noise and blur a KID larger by a wide margin.
InceptionV3 is built once, with random weights, for plumbing only: random Inception features
are degenerate, so no quality claim is made with them.
"""

import socket

import keras
import numpy as np
import pytest
from keras import ops
from scipy.ndimage import gaussian_filter

from diffusion_course.kid import (
    ENCODER_KINDS,
    INCEPTION_WEIGHTS_FILE,
    INCEPTION_WEIGHTS_MD5,
    KID,
    InceptionWeightsUnavailableError,
    _build_inception_encoder,
    format_kid,
    inception_encoder,
    kernel_inception_distance,
    make_encoder,
    offline_encoder,
)


def numpy_kid(real_features, generated_features):
    """The unbiased MMD² with the cubic polynomial kernel, in float64, written out in full."""
    real = np.asarray(real_features, np.float64)
    generated = np.asarray(generated_features, np.float64)
    dims = real.shape[1]

    def kernel(a, b):
        return (a @ b.T / dims + 1.0) ** 3

    def mean_without_diagonal(matrix):
        n = matrix.shape[0]
        return (matrix.sum() - np.trace(matrix)) / (n * (n - 1))

    return (mean_without_diagonal(kernel(real, real))
            + mean_without_diagonal(kernel(generated, generated))
            - 2.0 * kernel(real, generated).mean())


def kid_value(real_features, generated_features):
    return float(ops.convert_to_numpy(kernel_inception_distance(real_features,
                                                                 generated_features)))


def gaussian_features(rng, batch, dims, shift=0.0):
    return (rng.standard_normal((batch, dims)) + shift).astype("float32")


# ---- the estimator -----------------------------------------------------------------------


@pytest.mark.parametrize("real_batch, generated_batch", [(32, 32), (24, 40)])
def test_kid_is_symmetric(real_batch, generated_batch):
    rng = np.random.default_rng(0)
    real = gaussian_features(rng, real_batch, 16)
    generated = gaussian_features(rng, generated_batch, 16, shift=0.3)
    assert kid_value(real, generated) == pytest.approx(kid_value(generated, real), rel=1e-5)


@pytest.mark.parametrize("real_batch, generated_batch, dims", [(64, 64, 2048), (7, 12, 5)])
def test_kid_matches_a_float64_numpy_implementation(real_batch, generated_batch, dims):
    rng = np.random.default_rng(1)
    # non-negative, like pooled ReLU features
    real = np.abs(gaussian_features(rng, real_batch, dims))
    generated = np.abs(gaussian_features(rng, generated_batch, dims, shift=0.2))
    expected = numpy_kid(real, generated)
    assert kid_value(real, generated) == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_kid_reads_the_batch_size_at_run_time():
    """No static-shape assumption: a graph traced for unknown batch sizes gives the same value."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("unknown batch sizes inside a traced graph exist only in TensorFlow")
    import tensorflow as tf

    spec = tf.TensorSpec(shape=(None, 8), dtype=tf.float32)
    traced_kid = tf.function(kernel_inception_distance, input_signature=[spec, spec])
    rng = np.random.default_rng(2)
    for real_batch, generated_batch in [(16, 16), (5, 9)]:
        real = gaussian_features(rng, real_batch, 8)
        generated = gaussian_features(rng, generated_batch, 8, shift=0.5)
        assert float(traced_kid(real, generated)) == pytest.approx(
            numpy_kid(real, generated), rel=1e-4, abs=1e-5)


def test_kid_is_zero_in_expectation_for_one_distribution_and_large_for_two():
    rng = np.random.default_rng(3)
    same = np.array([kid_value(gaussian_features(rng, 32, 16), gaussian_features(rng, 32, 16))
                     for _ in range(200)])
    standard_error = same.std() / np.sqrt(len(same))
    # unbiased: the mean over many pairs is within 4 standard errors of 0 (biased would not be)
    assert abs(same.mean()) < 4 * standard_error
    assert same.min() < 0  # an unbiased estimator of 0 must go negative sometimes
    shifted = np.array([kid_value(gaussian_features(rng, 32, 16),
                                  gaussian_features(rng, 32, 16, shift=1.0))
                        for _ in range(20)])
    assert shifted.min() > 10 * same.std()


def test_format_kid_names_the_features():
    assert format_kid(0.2434, "InceptionV3/ImageNet@75px") == (
        "KID 0.243 (features: InceptionV3/ImageNet@75px)")


# ---- offline features on real photos ------------------------------------------------------


@pytest.fixture(scope="module")
def photo_tiles():
    """All non-overlapping 64x64 tiles of the six colour photos shipped in the two wheels."""
    skimage_data = pytest.importorskip(
        "skimage.data", reason="scikit-image (requirements.txt) ships the test photos")
    sklearn_datasets = pytest.importorskip(
        "sklearn.datasets", reason="scikit-learn (requirements.txt) ships the test photos")
    photos = [skimage_data.astronaut(), skimage_data.chelsea(), skimage_data.coffee(),
              skimage_data.rocket(), *sklearn_datasets.load_sample_images().images]
    tile_size = 64
    tiles = [
        photo[top:top + tile_size, left:left + tile_size]
        for photo in photos
        for top in range(0, photo.shape[0] - tile_size + 1, tile_size)
        for left in range(0, photo.shape[1] - tile_size + 1, tile_size)
    ]
    return np.stack(tiles).astype("float32") / 255.0


def blurred(images, sigma):
    return np.stack([gaussian_filter(image, sigma=(sigma, sigma, 0)) for image in images])


# image size -> blur sigma in pixels; at 16 px (the quick profile) there is less detail to lose,
# so the margin asked for blur is lower there
SEPARATION_CASES = {64: (1.0, 10.0), 16: (1.0, 5.0)}


@pytest.mark.parametrize("image_size", sorted(SEPARATION_CASES, reverse=True))
def test_offline_features_separate_real_from_noise_and_blur(photo_tiles, image_size):
    blur_sigma, blur_margin = SEPARATION_CASES[image_size]
    tiles = photo_tiles
    if image_size != tiles.shape[1]:
        tiles = ops.convert_to_numpy(
            ops.image.resize(tiles, (image_size, image_size), antialias=True))
    rng = np.random.default_rng(4)
    encoder = offline_encoder(image_size)
    real_features = encoder.predict(tiles, verbose=0)
    noise_features = encoder.predict(
        np.clip(rng.normal(0.5, 0.25, tiles.shape), 0.0, 1.0).astype("float32"), verbose=0)
    blurred_features = encoder.predict(blurred(tiles, blur_sigma), verbose=0)

    # disjoint halves of the tiles; the altered sets are made from the other half only
    real_vs_real, real_vs_noise, real_vs_blurred = [], [], []
    half = len(tiles) // 2
    for _ in range(10):
        order = rng.permutation(len(tiles))
        first, second = order[:half], order[half:2 * half]
        real_vs_real.append(kid_value(real_features[first], real_features[second]))
        real_vs_noise.append(kid_value(real_features[first], noise_features[second]))
        real_vs_blurred.append(kid_value(real_features[first], blurred_features[second]))
    real_scale = np.max(np.abs(real_vs_real))
    noise_ratio = np.min(real_vs_noise) / real_scale
    blur_ratio = np.min(real_vs_blurred) / real_scale
    print(f"{image_size}px: max |KID real-real| {real_scale:.4f}, "
          f"min KID real-noise {np.min(real_vs_noise):.3f} ({noise_ratio:.0f}x), "
          f"min KID real-blurred(sigma={blur_sigma}) {np.min(real_vs_blurred):.3f} "
          f"({blur_ratio:.0f}x)")
    assert noise_ratio > 10.0
    assert blur_ratio > blur_margin


def test_offline_features_are_deterministic_and_fit_any_image_size():
    images = np.random.default_rng(5).uniform(size=(3, 32, 32, 3)).astype("float32")
    first = ops.convert_to_numpy(offline_encoder(32)(images))
    second = ops.convert_to_numpy(offline_encoder(32)(images))
    np.testing.assert_array_equal(first, second)
    for image_size in (8, 16, 64, 100):
        encoder = offline_encoder(image_size)
        features = ops.convert_to_numpy(encoder(np.full((2, image_size, image_size, 3), 0.5)))
        assert features.shape[0] == 2 and features.ndim == 2
        assert np.isfinite(features).all()
    assert "@64px" in offline_encoder(100).feature_name  # larger images are downsampled
    with pytest.raises(ValueError, match="too small"):
        offline_encoder(4)


def test_make_encoder_says_which_features_it_uses():
    encoder = make_encoder("offline", 64)
    assert "offline" in encoder.name
    assert "not comparable with Inception KID" in encoder.feature_name
    assert set(ENCODER_KINDS) == {"inception", "offline"}
    with pytest.raises(ValueError, match="inception"):
        make_encoder("vgg", 64)


# ---- InceptionV3 ------------------------------------------------------------------------


def test_inception_encoder_feeds_inception_the_pixels_it_was_trained_on():
    """Random weights (the ImageNet file is not here offline). What reaches InceptionV3 must be
    the images at 0-255, resized, then mapped to [-1, 1] as in its pretraining. (Features of
    random weights are too sensitive to rounding to compare with a second computation.)"""
    encoder = _build_inception_encoder(64, 75, None, "InceptionV3/random@75px (test only)")
    images = np.random.default_rng(6).uniform(size=(2, 64, 64, 3)).astype("float32")
    features = ops.convert_to_numpy(encoder(images))
    assert features.shape == (2, 2048)
    assert "inception" in encoder.name
    assert encoder.layers[-1].name == "inception_v3"
    inception_inputs = keras.Model(encoder.inputs, encoder.layers[-2].output)(images)
    pixels = ops.image.resize(images * 255.0, (75, 75), antialias=True)
    # InceptionV3's preprocessing ("tf" mode): x / 127.5 - 1, from [0, 255] to [-1, 1]
    np.testing.assert_allclose(ops.convert_to_numpy(inception_inputs),
                               ops.convert_to_numpy(pixels / 127.5 - 1.0), atol=1e-5)


@pytest.fixture
def empty_keras_home(tmp_path, monkeypatch):
    """An empty Keras cache and no network: name resolution fails at once."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise socket.gaierror("no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    return tmp_path


def test_missing_imagenet_weights_raise_a_helpful_error(empty_keras_home):
    with pytest.raises(InceptionWeightsUnavailableError) as error:
        make_encoder("inception", 64)
    message = str(error.value)
    assert INCEPTION_WEIGHTS_FILE in message
    assert INCEPTION_WEIGHTS_MD5 in message
    assert str(empty_keras_home / "models") in message
    assert "offline" in message  # the explicit alternative is named, never taken silently
    assert isinstance(error.value, RuntimeError)


def test_a_cached_file_with_the_wrong_hash_is_reported_and_kept(empty_keras_home):
    cached_file = empty_keras_home / "models" / INCEPTION_WEIGHTS_FILE
    cached_file.parent.mkdir()
    cached_file.write_bytes(b"an interrupted download")
    with pytest.raises(InceptionWeightsUnavailableError, match=INCEPTION_WEIGHTS_MD5):
        inception_encoder(64)
    assert cached_file.read_bytes() == b"an interrupted download"


def test_a_missing_local_weights_file_raises_a_helpful_error(tmp_path):
    missing_path = tmp_path / "nowhere" / INCEPTION_WEIGHTS_FILE
    with pytest.raises(InceptionWeightsUnavailableError, match="neither 'imagenet' nor") as error:
        make_encoder("inception", 64, weights=str(missing_path))
    assert str(missing_path) in str(error.value)


def test_random_inception_weights_are_refused():
    for build in (lambda: inception_encoder(64, weights=None),
                  lambda: make_encoder("inception", 64, weights=None)):
        with pytest.raises(ValueError, match="degenerate"):
            build()


# ---- the metric --------------------------------------------------------------------------


def test_kid_metric_averages_the_batch_values():
    encoder = offline_encoder(16)
    metric = KID(encoder)
    rng = np.random.default_rng(6)
    batch_values = []
    for batch_size, blur_sigma in [(16, 0.0), (16, 1.0), (9, 2.0)]:
        real_images = rng.uniform(size=(batch_size, 16, 16, 3)).astype("float32")
        generated_images = blurred(rng.uniform(size=(batch_size, 16, 16, 3)), blur_sigma)
        generated_images = generated_images.astype("float32")
        metric.update_state(real_images, generated_images)
        batch_values.append(numpy_kid(encoder.predict(real_images, verbose=0),
                                      encoder.predict(generated_images, verbose=0)))
    assert float(metric.result()) == pytest.approx(np.mean(batch_values), rel=1e-4, abs=1e-5)
    assert metric.feature_name == encoder.feature_name
    assert metric.describe().startswith("KID ")
    assert encoder.feature_name in metric.describe()
    metric.reset_state()
    assert float(metric.result()) == 0.0
