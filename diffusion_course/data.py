"""Images in, batches out: the data pipeline for both models of the course.

The course trains on Oxford Flowers 102 through tensorflow-datasets (`load_tfds`), and can train
on the other tfds datasets of `diffusion_course.datasets` (Caltech Birds, CelebA, CIFAR-10);
anyone who has images but no tfds download can use a folder of JPEG/PNG files instead
(`load_folder`). Every source shares one preprocessing step (the dataset's crop, then centre
square, antialiased resize, rescale) and one batching recipe (cache, repeat, shuffle, optional
flip, batch, prefetch), taken from the Keras DDIM text. `load_images(source, ...)` picks the
source from one string: "tfds" (Oxford Flowers), "tfds:NAME" or "folder:PATH".

    train_images = load_tfds("train", image_size=32, batch_size=64, dataset="cifar10")
    train_images, val_images = load_folder("my_flowers/", 64, 64, validation_fraction=0.2)
    train_images, val_images = load_splits("ddpm", "tfds", DDPMConfig())   # a model's splits

This module is TensorFlow-only: tf.data feeds Keras on every backend.
"""

import os
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import tensorflow as tf
from PIL import Image

from diffusion_course.datasets import (
    DEFAULT_DATASET,
    DatasetUnavailableError,  # noqa: F401 (load_tfds raises it: catch it from here)
    prepared_builder,
    tfds_dataset,
)

VALUE_RANGES = ("unit", "symmetric")  # [0, 1] for DDIM, [-1, 1] for DDPM (Ho et al. 2020, 3.3)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# Pillow names multi-picture JPEGs (from some cameras) "MPO"; TensorFlow decodes them as JPEG.
DECODABLE_FORMATS = ("JPEG", "MPO", "PNG")
SHUFFLE_BUFFER_BATCHES = 10  # the DDIM text shuffles within 10 batches' worth of images
FOLDER_SPLIT_SEED = 0  # fixed, so a folder always splits into the same train/validation files


class DatasetError(ValueError):
    """The images given are missing, unreadable or too few for what was asked."""


class TooFewImagesError(DatasetError):
    """Fewer images than one batch: every batch would be dropped. Its fields let a caller name
    its own options (the command line has no batch_size)."""

    def __init__(self, message, what, num_images, batch_size):
        super().__init__(message)
        self.what, self.num_images, self.batch_size = what, num_images, batch_size


def preprocess_image(image, image_size, value_range="unit"):
    """Centre-crop an image [height, width, 3] of values 0..255 to a square of `image_size`.

    Returns float32 values in [0, 1] (`value_range="unit"`) or [-1, 1] (`"symmetric"`).
    """
    _check_value_range(value_range)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    crop_size = tf.minimum(height, width)
    square_image = tf.image.crop_to_bounding_box(
        image, (height - crop_size) // 2, (width - crop_size) // 2, crop_size, crop_size
    )
    # for downsampling it is important to turn on antialiasing (Keras DDIM text)
    resized_image = tf.image.resize(square_image, [image_size, image_size], antialias=True)
    # antialiased resizing can overshoot the input range slightly, hence the clipping
    unit_image = tf.clip_by_value(resized_image / 255.0, 0.0, 1.0)
    if value_range == "symmetric":
        return unit_image * 2.0 - 1.0
    return unit_image


def load_tfds(
    split,
    image_size,
    batch_size,
    value_range="unit",
    flip=False,
    repetitions=1,
    shuffle=True,
    seed=None,
    data_dir=None,
    drop_remainder=True,
    cache=True,
    dataset=DEFAULT_DATASET,
):
    """Batches of a tfds dataset's images (Oxford Flowers by default), downloaded on first use.

    `split` is a tfds split string such as `tfds_dataset().train_split`; `dataset` a name from
    `diffusion_course.datasets.DATASETS`, whose crop comes before the shared preprocessing.
    Raises `DatasetUnavailableError` when the dataset is not in `data_dir` and cannot be
    downloaded.
    """
    _check_options(image_size, batch_size, value_range, repetitions)
    dataset = tfds_dataset(dataset)
    builder = prepared_builder(dataset, data_dir)
    num_images = builder.info.splits[split].num_examples
    what = f"{dataset.name} split {split!r}"
    _check_enough_images(num_images, what, batch_size, repetitions, drop_remainder)
    import tensorflow_datasets as tfds  # see diffusion_course/datasets.py: imported lazily

    examples = builder.as_dataset(
        split=split, shuffle_files=shuffle, read_config=tfds.ReadConfig(shuffle_seed=seed)
    )
    images = examples.map(
        lambda example: preprocess_image(dataset.crop(example), image_size, value_range),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return _batched(images, batch_size, flip, repetitions, shuffle, seed, drop_remainder, cache)


# Why not `keras.utils.image_dataset_from_directory`: it resizes without antialiasing (the DDIM
# text insists on it when downsampling) and finds a broken file only when training reaches it;
# the file listing and the split are all it would replace, and those are short.
def load_folder(
    path,
    image_size,
    batch_size,
    value_range="unit",
    flip=False,
    repetitions=1,
    shuffle=True,
    seed=None,
    validation_fraction=None,
    drop_remainder=True,
    cache=True,
):
    """Batches of the JPEG/PNG images anywhere under the folder `path`.

    With `validation_fraction` (for example 0.2) returns `(train, validation)` datasets made of
    disjoint files, always the same ones for the same folder; the validation images are never
    flipped. Every file is decoded once up front (at reduced size) so that a broken one is
    named before training starts.
    """
    _check_options(image_size, batch_size, value_range, repetitions)
    image_paths = list_image_files(path)
    for image_path in image_paths:
        _check_image_file(image_path)

    def batched_images(paths, split_name, split_flip):
        _check_enough_images(len(paths), split_name, batch_size, repetitions, drop_remainder)
        # bytes, not str: a file name need not be UTF-8 (TensorFlow's strings must be)
        images = tf.data.Dataset.from_tensor_slices([os.fsencode(path) for path in paths])
        images = images.map(
            lambda image_path: preprocess_image(_decode_file(image_path), image_size, value_range),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        return _batched(
            images, batch_size, split_flip, repetitions, shuffle, seed, drop_remainder, cache
        )

    if validation_fraction is None:
        return batched_images(image_paths, f"folder {path}", flip)
    train_paths, validation_paths = split_files(image_paths, validation_fraction)
    train_images = batched_images(train_paths, f"training part of {path}", flip)
    validation_images = batched_images(validation_paths, f"validation part of {path}", False)
    return train_images, validation_images


def load_images(source, image_size, batch_size, split=None, **options):
    """Load from a source string: `"tfds"` (Oxford Flowers), `"tfds:NAME"` or `"folder:PATH"`.

    `split` is the tfds split (default: the dataset's training split); a folder is split with
    `validation_fraction=` instead. Other options go to `load_tfds` or `load_folder`.
    """
    kind, location = parse_source(source)
    if kind == "tfds":
        split = split or tfds_dataset(location).train_split
        return load_tfds(split, image_size, batch_size, dataset=location, **options)
    if split is not None:
        raise ValueError(
            f"split={split!r} applies to the tfds source only; to split {source!r} into "
            "training and validation images pass validation_fraction= (for example 0.2)."
        )
    return load_folder(location, image_size, batch_size, **options)


def parse_source(source):
    """Split a source string into `("tfds", dataset_name)` or `("folder", path)`."""
    if source == "tfds":
        return "tfds", DEFAULT_DATASET
    kind, _, location = str(source).partition(":")
    if kind == "tfds" and location:
        return "tfds", tfds_dataset(location).name
    if kind == "folder" and location:
        return "folder", location
    raise ValueError(
        f"Unknown image source {source!r}: expected 'tfds' (Oxford Flowers 102 through "
        "tensorflow-datasets), 'tfds:NAME' (for example 'tfds:cifar10') or 'folder:PATH' (a "
        "folder of JPEG/PNG images), for example 'folder:data/flowers'."
    )


def image_size_for(source, image_size):
    """The image size to train at on `source`: `image_size`, but no larger than the images of a
    tfds dataset that has one size (CIFAR-10 trains at 32 px even with a 64 px profile)."""
    if source == "synthetic" or parse_source(source)[0] != "tfds":
        return image_size
    native_image_size = tfds_dataset(parse_source(source)[1]).native_image_size
    return min(image_size, native_image_size or image_size)


def count_images(dataset):
    """How many images a dataset yields, batched or not, by going through it once."""
    return sum(int(element.shape[0]) if element.shape.rank == 4 else 1 for element in dataset)


def list_image_files(path):
    """All JPEG/PNG files under `path` (searched recursively), sorted so the order is fixed."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DatasetError(
            f"Image folder {folder} does not exist (or is not a folder). Expected a folder of "
            f"{'/'.join(IMAGE_EXTENSIONS)} images; check the path."
        )
    image_paths = sorted(
        file_path
        for file_path in folder.rglob("*")
        if file_path.suffix.lower() in IMAGE_EXTENSIONS and file_path.is_file()
    )
    if not image_paths:
        raise DatasetError(
            f"Image folder {folder} holds no images: looked (recursively) for files ending in "
            f"{', '.join(IMAGE_EXTENSIONS)} (any letter case). Put JPEG or PNG images there."
        )
    return image_paths


def split_files(paths, validation_fraction):
    """Deterministically split files into `(train, validation)`, each sorted.

    The files are shuffled with a fixed seed first, so that a folder sorted by class does not
    put whole classes into validation.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(
            f"validation_fraction={validation_fraction!r} must be between 0 and 1 "
            "(exclusive), for example 0.2; pass None for no validation split."
        )
    num_validation = round(len(paths) * validation_fraction)
    if not 0 < num_validation < len(paths):
        raise DatasetError(
            f"validation_fraction={validation_fraction} of {len(paths)} images leaves "
            f"{num_validation} for validation and {len(paths) - num_validation} for training; "
            "both need at least one. Add images or change the fraction."
        )
    shuffled_paths = list(paths)
    random.Random(FOLDER_SPLIT_SEED).shuffle(shuffled_paths)
    return sorted(shuffled_paths[num_validation:]), sorted(shuffled_paths[:num_validation])


def _decode_file(image_path):
    # channels=3 turns greyscale and RGBA PNGs into RGB; expand_animations=False keeps rank 3
    return tf.io.decode_image(tf.io.read_file(image_path), channels=3, expand_animations=False)


def _check_image_file(image_path):
    """Decode the file with TensorFlow's decoders, which the pipeline uses, to name a broken file
    before training starts (Pillow, for one, ignores a PNG's checksums). A JPEG is decoded at
    1/8 size (`ratio=8`): every byte is still parsed, at a fraction of the cost."""
    try:
        with Image.open(image_path) as image:  # reads the header only
            image_format = image.format
        contents = tf.io.read_file(os.fsencode(image_path))
        if image_format == "PNG":
            tf.io.decode_png(contents, channels=3)
        elif image_format in DECODABLE_FORMATS:
            tf.io.decode_jpeg(contents, channels=3, ratio=8)
    except (OSError, SyntaxError, tf.errors.InvalidArgumentError) as error:
        reason = getattr(error, "message", None) or error  # TensorFlow's, without its op trace
        raise DatasetError(
            f"Cannot decode image file {image_path}: {reason}. Expected a JPEG or PNG image; "
            "delete or replace this file."
        ) from None
    if image_format not in DECODABLE_FORMATS:
        raise DatasetError(
            f"Image file {image_path} holds {image_format} data, but only JPEG and PNG are read; "
            "convert it to PNG or remove it."
        )


def _batched(images, batch_size, flip, repetitions, shuffle, seed, drop_remainder, cache):
    """The DDIM text's recipe: cache, repeat, shuffle, (flip), batch, prefetch."""
    if cache:
        images = images.cache()  # decode and resize once, not once per epoch
    images = images.repeat(repetitions)
    if shuffle:
        images = images.shuffle(SHUFFLE_BUFFER_BATCHES * batch_size, seed=seed)
    if flip:
        images = _randomly_flipped(images, seed)
    return images.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def _randomly_flipped(images, seed):
    """Flip each image left-right with probability 1/2; reproducible when `seed` is given."""
    # one stateless seed pair per image, as the TensorFlow random-numbers guide does for tf.data
    seed_pairs = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(images, seed_pairs).map(
        tf.image.stateless_random_flip_left_right, num_parallel_calls=tf.data.AUTOTUNE
    )


def _check_options(image_size, batch_size, value_range, repetitions):
    for name, value in [
        ("image_size", image_size),
        ("batch_size", batch_size),
        ("repetitions", repetitions),
    ]:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}={value!r} is invalid: it must be a positive integer.")
    _check_value_range(value_range)


def _check_value_range(value_range):
    if value_range not in VALUE_RANGES:
        raise ValueError(
            f"value_range={value_range!r} is unknown: expected 'unit' for [0, 1] (DDIM) or "
            "'symmetric' for [-1, 1] (DDPM)."
        )


def _check_enough_images(num_images, what, batch_size, repetitions, drop_remainder):
    # with drop_remainder, fewer images than one batch would give an empty dataset, silently
    if drop_remainder and num_images * repetitions < batch_size:
        raise TooFewImagesError(
            f"The {what} has {num_images} images ({num_images * repetitions} with "
            f"repetitions={repetitions}), fewer than batch_size={batch_size}, so every batch "
            "would be dropped. Lower batch_size, raise repetitions or pass drop_remainder=False.",
            what, num_images * repetitions, batch_size,
        )


SYNTHETIC_IMAGES = {"train": 1024, "validation": 128}  # enough for quick-profile runs


def load_ddim_splits(source, config, seed=None):
    """(train, validation) batches for the DDIM assignment, at `config`'s size and batch.

    `source` is "tfds" (the 80%/20% Oxford Flowers split), "tfds:NAME" (that dataset's training
    and validation splits), "folder:PATH" (an 80%/20% split of the folder's images), or
    "synthetic" (flower-like test images, for machines that cannot get the real data:
    `diffusion_course.synthetic.synthetic_garden`). Training images repeat
    `config.dataset_repetitions` times per epoch, as in the DDIM text.
    """
    common = dict(image_size=config.image_size, batch_size=config.batch_size, seed=seed)
    if source == "synthetic":
        from diffusion_course.synthetic import synthetic_garden

        train_images = synthetic_garden(SYNTHETIC_IMAGES["train"], config.image_size, seed=0)
        validation_images = synthetic_garden(SYNTHETIC_IMAGES["validation"],
                                             config.image_size, seed=1)
        return (_batched(tf.data.Dataset.from_tensor_slices(train_images), config.batch_size,
                         False, config.dataset_repetitions, True, seed, True, True),
                _batched(tf.data.Dataset.from_tensor_slices(validation_images),
                         config.batch_size, False, 1, True, seed, True, True))
    kind, name = parse_source(source)
    if kind == "tfds":
        dataset = tfds_dataset(name)
        return (load_tfds(dataset.train_split, repetitions=config.dataset_repetitions,
                          dataset=name, **common),
                load_tfds(dataset.validation_split, dataset=name, **common))
    train, validation = load_images(source, validation_fraction=0.2, **common)
    return train.repeat(config.dataset_repetitions), validation


def load_splits(model_name, source, config, seed=None):
    """(train, validation) batches for "ddim" or "ddpm": training images in the model's range,
    validation images in [0, 1] (what KID compares).

    DDIM uses the assignment's 80%/20% split. DDPM trains, as in the lab, on every flower image
    (the dataset's `ddpm_train_split`), so its KID is measured on images it has seen; on the
    other tfds datasets it trains on their training split. On a folder or the synthetic images
    both models use the same 80%/20% split, the images once per epoch.
    """
    if model_name == "ddim":
        return load_ddim_splits(source, config, seed)
    common = dict(image_size=config.image_size, batch_size=config.batch_size, seed=seed)
    kind, name = ("synthetic", None) if source == "synthetic" else parse_source(source)
    if kind == "tfds":
        dataset = tfds_dataset(name)
        return (load_tfds(dataset.ddpm_train_split, value_range="symmetric", dataset=name,
                          **common),
                load_tfds(dataset.validation_split, dataset=name, **common))
    # load_ddim_splits reads only these three fields
    splits_config = SimpleNamespace(dataset_repetitions=1, image_size=config.image_size,
                                    batch_size=config.batch_size)
    train, validation = load_ddim_splits(source, splits_config, seed)
    # the same arithmetic as value_range="symmetric" (DDPM section 3.3)
    return train.map(lambda images: images * 2.0 - 1.0), validation


def to_unit_range(images):
    """[-1, 1] pixel values (DDPM's) as [0, 1], clipped: the inverse of value_range="symmetric"."""
    return np.clip((np.asarray(images) + 1.0) / 2.0, 0.0, 1.0)
