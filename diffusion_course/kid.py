"""Kernel Inception Distance (Bińkowski et al. 2018), estimated per batch as in the DDIM text.

KID compares two sets of images through features of a fixed encoder: the squared maximum mean
discrepancy (MMD²) between the feature sets, with the polynomial kernel k(a, b) = (a·b/d + 1)³.
Only the features change between the two encoders offered here, so every printed KID names them:

- `"inception"`: InceptionV3 with its ImageNet weights at 75 px, the KID of the DDIM text (the
  literature uses 299 px, so values differ from published ones). The weights (88 MB) come from
  the Keras cache or a download; when neither works, `InceptionWeightsUnavailableError` says how
  to provide them. Random Inception weights are refused: their features are degenerate and give
  KID ≈ 0 for any two image sets.
- `"offline"`: deterministic colour and texture statistics that need no weights, for machines
  without the Inception weights. Its values are NOT comparable with Inception KID values or
  with the published ones; they only rank models measured with the same features.

    encoder = make_encoder("inception", config.image_size)   # or "offline"
    kid = KID(encoder)
    kid.update_state(real_images, generated_images)
    print(kid.describe())   # "KID 0.243 (features: InceptionV3/ImageNet@75px)"
"""

import hashlib
import os

import keras
import numpy as np
from keras import layers, ops

from diffusion_course.inception_weights import (  # noqa: F401 (re-exported)
    INCEPTION_WEIGHTS_FILE,
    INCEPTION_WEIGHTS_MD5,
    INCEPTION_WEIGHTS_URL,
    inception_weights_cache_dir,
)

# which features each kind of encoder computes; `encoder.feature_name` adds the image size
ENCODER_KINDS = {
    "inception": "InceptionV3/ImageNet (the KID of the DDIM text)",
    "offline": "offline colour/texture statistics (not comparable with Inception KID)",
}

# the smallest input InceptionV3 accepts; the DDIM text measures KID at exactly this size
INCEPTION_MIN_IMAGE_SIZE = 75

OFFLINE_FEATURES = "offline colour/texture statistics"
OFFLINE_IMAGE_SIZE = 64


class InceptionWeightsUnavailableError(RuntimeError):
    """The InceptionV3 ImageNet weights are neither in the Keras cache nor downloadable."""


# ---- the estimator -----------------------------------------------------------------------


def polynomial_kernel(features_1, features_2):
    """k(a, b) = (a·b/d + 1)³ for every pair of rows, d the feature dimension (the KID kernel)."""
    features_1 = ops.cast(features_1, "float32")
    features_2 = ops.cast(features_2, "float32")
    feature_dimensions = ops.cast(ops.shape(features_1)[1], "float32")
    return (ops.matmul(features_1, ops.transpose(features_2)) / feature_dimensions + 1.0) ** 3.0


def _mean_off_diagonal(kernel):
    """Mean over i ≠ j: the diagonal k(a_i, a_i) would bias the estimate upwards."""
    batch_size = ops.cast(ops.shape(kernel)[0], "float32")
    off_diagonal_sum = ops.sum(kernel) - ops.sum(ops.diagonal(kernel))
    return off_diagonal_sum / (batch_size * (batch_size - 1.0))


def kernel_inception_distance(real_features, generated_features):
    """The unbiased MMD² estimate between two feature batches (Gretton et al. 2012, lemma 6).

    The batch sizes are read at run time, so the last, smaller batch of a dataset works too;
    each set needs at least 2 rows (the off-diagonal means divide by m(m - 1)).
    Values slightly below zero are valid: the estimator is unbiased, not non-negative.
    """
    mean_kernel_real = _mean_off_diagonal(polynomial_kernel(real_features, real_features))
    mean_kernel_generated = _mean_off_diagonal(
        polynomial_kernel(generated_features, generated_features)
    )
    mean_kernel_cross = ops.mean(polynomial_kernel(real_features, generated_features))
    return mean_kernel_real + mean_kernel_generated - 2.0 * mean_kernel_cross


def format_kid(value, feature_name):
    """Formats as `KID 0.243 (features: InceptionV3/ImageNet@75px)`: never without features."""
    return f"KID {float(ops.convert_to_numpy(value)):.3g} (features: {feature_name})"


# ---- InceptionV3 features ------------------------------------------------------------------




def _md5(path):
    digest = hashlib.md5()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _how_to_provide_weights(cache_dir):
    return (
        f"To fix it, either\n"
        f"  - on a machine with internet access, download {INCEPTION_WEIGHTS_URL}\n"
        f"    (or run: python -c \"import keras; keras.applications.InceptionV3("
        f"include_top=False, weights='imagenet')\")\n"
        f"    and copy {INCEPTION_WEIGHTS_FILE} into {cache_dir}, or\n"
        f"  - pass its path: make_encoder('inception', image_size, "
        f"weights='/path/to/{INCEPTION_WEIGHTS_FILE}').\n"
        f"Without these weights, choose the weight-free features explicitly with "
        f"make_encoder('offline', image_size); their KID values are not comparable with "
        f"Inception KID values."
    )


def _resolve_inception_weights(weights):
    """Returns (local path of the weights file, label of the weights for `feature_name`)."""
    if weights is None:
        raise ValueError(
            "weights=None is refused: a randomly initialised InceptionV3 gives degenerate "
            "features, and KID with them is about 0 (-2.4e-7) for any two image sets, real or "
            "noise alike, so it would measure nothing. Use weights='imagenet', the path of the "
            f"file {INCEPTION_WEIGHTS_FILE}, or the weight-free features of "
            "make_encoder('offline', image_size)."
        )
    if weights == "imagenet":
        cache_dir = inception_weights_cache_dir()
        cached_path = os.path.join(cache_dir, INCEPTION_WEIGHTS_FILE)
        if os.path.exists(cached_path):
            # checked here, never by Keras: Keras deletes a cached file whose hash it dislikes
            # when it cannot download a replacement
            found_md5 = _md5(cached_path)
            if found_md5 != INCEPTION_WEIGHTS_MD5:
                raise InceptionWeightsUnavailableError(
                    f"{cached_path} has md5 {found_md5}, but the InceptionV3 ImageNet weights "
                    f"have md5 {INCEPTION_WEIGHTS_MD5}: the file is incomplete or a different "
                    f"file. Replace it (it was left untouched).\n"
                    + _how_to_provide_weights(cache_dir)
                )
            return cached_path, "ImageNet"
        try:
            downloaded_path = keras.utils.get_file(
                INCEPTION_WEIGHTS_FILE, INCEPTION_WEIGHTS_URL, cache_dir=os.path.dirname(cache_dir),
                cache_subdir="models", file_hash=INCEPTION_WEIGHTS_MD5,
            )
        except Exception as error:
            raise InceptionWeightsUnavailableError(
                f"The InceptionV3 ImageNet weights for KID are not available.\n"
                f"Expected file: {INCEPTION_WEIGHTS_FILE} (about 88 MB, "
                f"md5 {INCEPTION_WEIGHTS_MD5})\n"
                f"in the Keras cache folder {cache_dir} ($KERAS_HOME/models, where KERAS_HOME "
                f"defaults to ~/.keras). It is not there, and downloading it failed: {error}\n"
                + _how_to_provide_weights(cache_dir)
            ) from error
        return downloaded_path, "ImageNet"
    if not isinstance(weights, (str, os.PathLike)) or not os.path.isfile(weights):
        raise InceptionWeightsUnavailableError(
            f"weights={weights!r} is neither 'imagenet' nor an existing file. Expected 'imagenet' "
            f"or the path of {INCEPTION_WEIGHTS_FILE} (md5 {INCEPTION_WEIGHTS_MD5}).\n"
            + _how_to_provide_weights(inception_weights_cache_dir())
        )
    if _md5(weights) == INCEPTION_WEIGHTS_MD5:
        return os.fspath(weights), "ImageNet"
    return os.fspath(weights), f"weights from {os.path.basename(weights)}"


def _build_inception_encoder(image_size, kid_image_size, weights, feature_name):
    """The encoder of the DDIM text; `weights` is a local file path (or None, in tests only)."""
    encoder = keras.Sequential(
        [
            keras.Input(shape=(image_size, image_size, 3)),
            # back to the 0-255 pixel range, then the preprocessing used in pretraining
            layers.Rescaling(255.0),
            layers.Resizing(kid_image_size, kid_image_size, antialias=True),
            layers.Lambda(keras.applications.inception_v3.preprocess_input),
            keras.applications.InceptionV3(
                include_top=False,
                input_shape=(kid_image_size, kid_image_size, 3),
                weights=weights,
                pooling="avg",  # the 2048-d global average of the last feature map
            ),
        ],
        name="inception_v3_encoder",
    )
    encoder.feature_name = feature_name
    return encoder


def inception_encoder(image_size, kid_image_size=INCEPTION_MIN_IMAGE_SIZE, weights="imagenet"):
    """Maps images in [0, 1] to 2048-d InceptionV3 features computed at `kid_image_size` px.

    `weights` is "imagenet" (the Keras cache, else a download) or the path of a local copy of
    the no-top weights file. Raises `InceptionWeightsUnavailableError` when neither works; it
    never falls back to other features.
    """
    if kid_image_size < INCEPTION_MIN_IMAGE_SIZE:
        raise ValueError(
            f"kid_image_size={kid_image_size} is too small: InceptionV3 needs at least "
            f"{INCEPTION_MIN_IMAGE_SIZE} px."
        )
    weights_path, weights_label = _resolve_inception_weights(weights)
    return _build_inception_encoder(
        image_size, kid_image_size, weights_path,
        feature_name=f"InceptionV3/{weights_label}@{kid_image_size}px",
    )


# ---- weight-free features -------------------------------------------------------------------

# luminance and two opponent colour channels (red-green, yellow-blue), as columns
_OPPONENT_COLOURS = np.array(
    [[1 / 3, 1 / 2, 1 / 4], [1 / 3, -1 / 2, 1 / 4], [1 / 3, 0.0, -1 / 2]], "float32"
)
_LAPLACIAN = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], "float32") / np.sqrt(20.0)
# mean |r| / rms(r) of a Gaussian response: natural images are sparser (heavy-tailed edges)
_GAUSSIAN_SPARSITY = float(np.sqrt(2.0 / np.pi))
_EPSILON = 1e-6


def _band_pass_filters(num_random_filters, seed):
    """A Laplacian per channel plus fixed random zero-mean 3x3 filters across the channels.

    Zero mean makes every filter blind to the local average, so it measures detail only; the
    unit norm makes energies comparable between filters. Seeded: identical on every machine.
    """
    laplacians = np.zeros((3, 3, 3, 3), "float32")
    for channel in range(3):
        laplacians[:, :, channel, channel] = _LAPLACIAN
    random_filters = np.random.default_rng(seed).standard_normal((3, 3, 3, num_random_filters))
    random_filters -= random_filters.mean(axis=(0, 1), keepdims=True)
    random_filters /= np.sqrt((random_filters**2).sum(axis=(0, 1, 2), keepdims=True))
    return np.concatenate([laplacians, random_filters.astype("float32")], axis=-1)


@keras.saving.register_keras_serializable(package="diffusion_course")
class ColourTextureStatistics(layers.Layer):
    """Weight-free features of natural images: colour, spectral slope and sparsity statistics.

    Each family reacts to one way generated images go wrong:
    1. colour: mean and spread of the opponent colour channels and a soft luminance histogram
       (wrong colours, washed-out or harsh contrast);
    2. spectral slope: log2 of the band-pass energy ratio between adjacent octaves of an
       average-pooled pyramid. Natural images have a nearly constant ratio (their power spectrum
       falls as 1/f², Field 1987); blur makes the fine octaves collapse, noise makes them soar;
    3. sparsity: mean |r| / rms(r) of the band-pass responses, minus its Gaussian value: edges
       make natural images heavy-tailed, noise is Gaussian.
    """

    def __init__(self, num_octaves=4, num_random_filters=8, seed=2018, histogram_bins=8,
                 **kwargs):
        kwargs.setdefault("dtype", "float32")  # log energies need float32 even under mixed policy
        super().__init__(**kwargs)
        self.num_octaves = num_octaves
        self.num_random_filters = num_random_filters
        self.seed = seed
        self.histogram_bins = histogram_bins
        self.filters = _band_pass_filters(num_random_filters, seed)

    def call(self, images):
        colours = ops.matmul(ops.cast(images, "float32"), _OPPONENT_COLOURS)
        features = [
            ops.mean(colours, axis=(1, 2)),
            4.0 * ops.std(colours, axis=(1, 2)),  # x4 brings a typical spread near 1
            self._luminance_histogram(colours[..., :1]),
        ]
        previous_log_energies = None
        for _ in range(self.num_octaves):
            responses = ops.conv(colours, self.filters, padding="valid")
            energies = ops.mean(responses**2, axis=(1, 2))
            log_energies = ops.log(energies + _EPSILON) / np.log(2.0)
            if previous_log_energies is not None:
                features.append(previous_log_energies - log_energies)
            previous_log_energies = log_energies
            sparsity = ops.mean(ops.abs(responses), axis=(1, 2)) / ops.sqrt(energies + _EPSILON)
            features.append(4.0 * (sparsity - _GAUSSIAN_SPARSITY))
            colours = ops.average_pool(colours, pool_size=2, strides=2)  # one octave coarser
        return ops.concatenate(features, axis=-1)

    def _luminance_histogram(self, luminance):
        """Soft histogram (Gaussian bins), as densities relative to uniform, so uniform is 1."""
        bin_width = 1.0 / self.histogram_bins
        centres = (np.arange(self.histogram_bins, dtype="float32") + 0.5) * bin_width
        memberships = ops.exp(-0.5 * ((luminance - centres) / bin_width) ** 2)
        memberships = memberships / (ops.sum(memberships, axis=-1, keepdims=True) + _EPSILON)
        return self.histogram_bins * ops.mean(memberships, axis=(1, 2))

    def compute_output_shape(self, input_shape):
        num_filters = 3 + self.num_random_filters
        dims = 6 + self.histogram_bins + num_filters * (2 * self.num_octaves - 1)
        return (input_shape[0], dims)

    def get_config(self):
        return {**super().get_config(), "num_octaves": self.num_octaves,
                "num_random_filters": self.num_random_filters, "seed": self.seed,
                "histogram_bins": self.histogram_bins}


def _octaves_that_fit(image_size, max_octaves=4):
    """How many octaves of a 2x pyramid still leave room for a 3x3 filter (at most 4)."""
    num_octaves = 1
    while num_octaves < max_octaves and image_size // 2**num_octaves >= 3:
        num_octaves += 1
    return num_octaves


def offline_encoder(image_size, kid_image_size=None):
    """Maps images in [0, 1] to weight-free colour/texture features computed at `kid_image_size`.

    For machines without the Inception weights. Its KID values rank models measured with these
    same features only: they are not comparable with Inception KID or with published values.
    By default the features are computed at the images' own size, downsampled to at most
    64 px: upsampling would add no detail, only the blur of the interpolation.
    """
    if kid_image_size is None:
        kid_image_size = min(image_size, OFFLINE_IMAGE_SIZE)
    if kid_image_size < 8:
        raise ValueError(
            f"kid_image_size={kid_image_size} is too small for the offline features: "
            f"two octaves of 3x3 filters need at least 8 px."
        )
    stages = [keras.Input(shape=(image_size, image_size, 3))]
    if image_size != kid_image_size:
        stages.append(layers.Resizing(kid_image_size, kid_image_size, antialias=True))
    stages.append(ColourTextureStatistics(num_octaves=_octaves_that_fit(kid_image_size)))
    encoder = keras.Sequential(stages, name="offline_colour_texture_encoder")
    encoder.feature_name = (
        f"{OFFLINE_FEATURES}@{kid_image_size}px (not comparable with Inception KID)"
    )
    return encoder


def make_encoder(kind, image_size, kid_image_size=None, weights="imagenet"):
    """The feature extractor for KID, chosen explicitly: "inception" or "offline".

    `kid_image_size` is the resolution the features are computed at (default: 75 px for
    Inception; for the offline features the images' own size, at most 64 px); `weights`
    applies to Inception only. The encoder's `feature_name` says which features it computes.
    """
    if kind == "inception":
        return inception_encoder(
            image_size, kid_image_size or INCEPTION_MIN_IMAGE_SIZE, weights=weights
        )
    if kind == "offline":
        return offline_encoder(image_size, kid_image_size)
    raise ValueError(f"kind={kind!r} is not a KID encoder; expected one of {tuple(ENCODER_KINDS)}.")


# ---- the metric ------------------------------------------------------------------------------


class KID(keras.metrics.Metric):
    """KID estimated per batch and averaged over batches, as in the DDIM text."""

    def __init__(self, encoder, name="kid", **kwargs):
        super().__init__(name=name, **kwargs)
        self.encoder = encoder
        self.feature_name = encoder.feature_name
        self.kid_tracker = keras.metrics.Mean(name="kid_tracker")

    def update_state(self, real_images, generated_images, sample_weight=None):
        """Adds the KID of one batch; `sample_weight` is accepted for Keras and ignored."""
        real_features = self.encoder(real_images, training=False)
        generated_features = self.encoder(generated_images, training=False)
        self.kid_tracker.update_state(
            kernel_inception_distance(real_features, generated_features)
        )

    def result(self):
        return self.kid_tracker.result()

    def reset_state(self):
        self.kid_tracker.reset_state()

    def describe(self, value=None):
        """The current (or a given) KID with the name of its features."""
        return format_kid(self.result() if value is None else value, self.feature_name)
