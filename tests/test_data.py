"""Tests for diffusion_course.data, offline.

The real oxford_flowers102 tfds builder runs over a 40-image fixture written here (JPEGs named
jpg/image_NNNNN.jpg, with imagelabels.mat and setid.mat from scipy.io.savemat, the files the
builder downloads), so the unchanged split strings go through tfds' real slicing.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import socket  # noqa: E402
import urllib.request  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.io  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
from PIL import Image  # noqa: E402

from diffusion_course.data import (  # noqa: E402
    DatasetError,
    DatasetUnavailableError,
    count_images,
    load_folder,
    load_images,
    load_tfds,
    preprocess_image,
)
from diffusion_course.datasets import tfds_dataset  # noqa: E402

tfds.disable_progress_bar()

FLOWERS = tfds_dataset("oxford_flowers102")
DATASET_NAME = FLOWERS.name
DDIM_TRAIN_SPLIT = FLOWERS.train_split
DDIM_VALIDATION_SPLIT = FLOWERS.validation_split
DDPM_TRAIN_SPLIT = FLOWERS.ddpm_train_split

CENTRE_COLOUR = (220, 40, 40)
BORDER_COLOUR = (40, 40, 220)
# (width, height): the borders are 8 or 16 px, whole JPEG blocks, so colours do not bleed across
FLOWER_SIZES = [(64, 48), (48, 80), (88, 56)]
# Official split sizes whose 80% is a whole number, so the expected counts are exact:
# train 8+8+16 = 32, validation 2+2+4 = 8.
OFFICIAL_SPLIT_SIZES = {"trnid": 10, "valid": 10, "tstid": 20}
NUM_FLOWERS = sum(OFFICIAL_SPLIT_SIZES.values())
IMAGE_SIZE = 16


def centre_marked_image(width, height):
    """Border colour everywhere except the centred square of side min(width, height)."""
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[:] = BORDER_COLOUR
    side = min(width, height)
    top, left = (height - side) // 2, (width - side) // 2
    pixels[top : top + side, left : left + side] = CENTRE_COLOUR
    return pixels


def write_flowers_download(folder):
    """The three files the builder downloads: jpg/ (extracted archive), labels, split ids."""
    (folder / "jpg").mkdir()
    for image_id in range(1, NUM_FLOWERS + 1):
        width, height = FLOWER_SIZES[image_id % len(FLOWER_SIZES)]
        Image.fromarray(centre_marked_image(width, height)).save(
            folder / "jpg" / f"image_{image_id:05d}.jpg", quality=95, subsampling=0
        )
    labels = np.arange(NUM_FLOWERS) % 102 + 1  # the .mat files count from 1
    scipy.io.savemat(folder / "imagelabels.mat", {"labels": labels[None, :]})
    # interleaved ids, so that each official split draws images from all over the folder
    image_ids = np.random.default_rng(0).permutation(NUM_FLOWERS) + 1
    split_ids, start = {}, 0
    for split_name, size in OFFICIAL_SPLIT_SIZES.items():
        split_ids[split_name] = np.sort(image_ids[start : start + size])[None, :]
        start += size
    scipy.io.savemat(folder / "setid.mat", split_ids)
    return {
        "images": str(folder),
        "labels": str(folder / "imagelabels.mat"),
        "setid": str(folder / "setid.mat"),
    }


@pytest.fixture(scope="module")
def flowers_data_dir(tmp_path_factory):
    """A tfds data dir prepared by load_tfds itself, with the download served from disk."""
    local_files = write_flowers_download(tmp_path_factory.mktemp("flowers_download"))
    data_dir = tmp_path_factory.mktemp("tensorflow_datasets")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            tfds.download.DownloadManager,
            "download_and_extract",
            lambda self, urls: {key: local_files[key] for key in urls},
        )
        patch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: [])
        load_tfds(DDPM_TRAIN_SPLIT, IMAGE_SIZE, batch_size=4, data_dir=str(data_dir))
    return str(data_dir)


def unbatched_count(split, data_dir):
    return count_images(load_tfds(split, IMAGE_SIZE, 1, shuffle=False, data_dir=data_dir))


def test_ddim_splits_take_80_and_20_percent_of_each_official_split(flowers_data_dir):
    assert unbatched_count(DDIM_TRAIN_SPLIT, flowers_data_dir) == 8 + 8 + 16
    assert unbatched_count(DDIM_VALIDATION_SPLIT, flowers_data_dir) == 2 + 2 + 4
    assert unbatched_count(DDPM_TRAIN_SPLIT, flowers_data_dir) == NUM_FLOWERS


def test_ddim_splits_are_disjoint_and_cover_every_image(flowers_data_dir):
    def file_names(split):
        examples = tfds.load(DATASET_NAME, split=split, data_dir=flowers_data_dir)
        return {example["file_name"].numpy() for example in examples}

    train_names = file_names(DDIM_TRAIN_SPLIT)
    validation_names = file_names(DDIM_VALIDATION_SPLIT)
    assert not train_names & validation_names
    assert len(train_names | validation_names) == NUM_FLOWERS


@pytest.mark.parametrize("value_range, low, high", [("unit", 0.0, 1.0), ("symmetric", -1.0, 1.0)])
def test_tfds_batches_are_centre_crops_in_the_requested_range(
    flowers_data_dir, value_range, low, high
):
    batches = load_tfds(
        DDIM_TRAIN_SPLIT,
        IMAGE_SIZE,
        5,
        value_range=value_range,
        flip=True,
        seed=3,
        data_dir=flowers_data_dir,
    )
    images = np.concatenate([batch.numpy() for batch in batches])
    assert images.shape == (30, IMAGE_SIZE, IMAGE_SIZE, 3)  # 32 images, last partial batch dropped
    assert images.dtype == np.float32
    assert images.min() >= low and images.max() <= high
    # squashing the whole image instead of cropping would bring in the border colour
    centre_colour = low + (high - low) * np.array(CENTRE_COLOUR) / 255.0
    tolerance = 0.08 * (high - low)  # JPEG compression error
    np.testing.assert_allclose(images, np.broadcast_to(centre_colour, images.shape), atol=tolerance)


def test_preprocess_image_crops_the_centre_of_a_tall_image():
    tall_image = centre_marked_image(width=30, height=90)
    processed = preprocess_image(tall_image, 10, "symmetric").numpy()
    assert processed.shape == (10, 10, 3)
    expected = np.array(CENTRE_COLOUR) / 127.5 - 1.0
    np.testing.assert_allclose(processed, np.broadcast_to(expected, processed.shape), atol=1e-3)


def test_load_images_reads_the_tfds_source(flowers_data_dir):
    batches = load_images(
        "tfds", IMAGE_SIZE, 1, split=DDIM_VALIDATION_SPLIT, shuffle=False, data_dir=flowers_data_dir
    )
    assert count_images(batches) == 8


@pytest.fixture
def offline(monkeypatch):
    """No proxy, no name resolution, and a download that fails as it does without a network."""
    attempts = []

    def failing_download(self, urls):
        attempts.append(urls)
        raise ConnectionError("Failed to resolve 'www.robots.ox.ac.uk'")

    def failing_resolution(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(urllib.request, "getproxies", dict)
    monkeypatch.setattr(socket, "getaddrinfo", failing_resolution)
    monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract", failing_download)
    return attempts


def assert_explains_how_to_get_the_dataset(message, data_dir):
    assert DATASET_NAME in message
    assert str(data_dir) in message
    assert f"tfds build {DATASET_NAME}" in message
    assert "load_folder" in message


def test_missing_dataset_offline_fails_fast_with_instructions(tmp_path, offline):
    with pytest.raises(DatasetUnavailableError) as raised:
        load_tfds(DDIM_TRAIN_SPLIT, IMAGE_SIZE, 4, data_dir=str(tmp_path))
    assert_explains_how_to_get_the_dataset(str(raised.value), tmp_path)
    assert offline == []  # did not wait for tfds' download retries


def test_failed_download_becomes_dataset_unavailable_error(tmp_path, offline, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: [])
    with pytest.raises(DatasetUnavailableError) as raised:
        load_tfds(DDIM_TRAIN_SPLIT, IMAGE_SIZE, 4, data_dir=str(tmp_path))
    assert_explains_how_to_get_the_dataset(str(raised.value), tmp_path)
    assert isinstance(raised.value.__cause__, ConnectionError)
    assert len(offline) == 1


# A folder of uniform grey images: the grey level tells which file an image came from.
FOLDER_FILES = {
    "a.png": ("RGB", (40, 30)),
    "b.PNG": ("L", (30, 50)),
    "c.jpg": ("RGB", (32, 32)),
    "d.png": ("RGBA", (50, 20)),
    "nested/e.jpeg": ("RGB", (24, 40)),
    "nested/f.png": ("RGB", (64, 48)),
    "nested/deeper/g.JPG": ("RGB", (48, 64)),
    "nested/deeper/h.png": ("L", (20, 20)),
    "i.png": ("RGB", (33, 47)),
    "j.png": ("RGB", (70, 35)),
}


def grey_level(relative_path):
    return 20 + 20 * sorted(FOLDER_FILES).index(relative_path)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for relative_path, (mode, size) in FOLDER_FILES.items():
        image_path = folder / relative_path
        image_path.parent.mkdir(parents=True, exist_ok=True)
        grey = grey_level(relative_path)
        colour = grey if mode == "L" else (grey,) * len(mode)
        Image.new(mode, size, colour).save(image_path, quality=100)
    (folder / "README.txt").write_text("not an image, and ignored")
    return folder


def image_greys(batches):
    """The grey level (0..255) of every image, in order."""
    return [round(float(image.mean()) * 255) for batch in batches for image in batch.numpy()]


def expected_greys(folder):
    relative_paths = sorted(FOLDER_FILES, key=lambda relative: folder / relative)
    return [grey_level(relative_path) for relative_path in relative_paths]


@pytest.mark.parametrize("value_range, low, high", [("unit", 0.0, 1.0), ("symmetric", -1.0, 1.0)])
def test_folder_batches_have_the_requested_shape_and_range(image_folder, value_range, low, high):
    batches = load_folder(image_folder, IMAGE_SIZE, 4, value_range=value_range, repetitions=2)
    shapes = [tuple(batch.shape) for batch in batches]
    assert shapes == [(4, IMAGE_SIZE, IMAGE_SIZE, 3)] * 5  # 10 images x 2 repetitions
    images = np.concatenate([batch.numpy() for batch in batches])
    assert images.min() >= low and images.max() <= high
    middle = (low + high) / 2  # the greys go from dark to light, across the middle
    assert images.min() < middle < images.max()


def test_folder_order_is_sorted_by_path_when_not_shuffled(image_folder):
    batches = load_folder(image_folder, IMAGE_SIZE, 10, shuffle=False)
    assert image_greys(batches) == expected_greys(image_folder)


def test_folder_validation_split_is_disjoint_sized_and_repeatable(image_folder):
    def split_greys():
        train, validation = load_folder(
            image_folder, IMAGE_SIZE, 1, shuffle=False, validation_fraction=0.3
        )
        return image_greys(train), image_greys(validation)

    train_greys, validation_greys = split_greys()
    assert (len(train_greys), len(validation_greys)) == (7, 3)
    assert sorted(train_greys + validation_greys) == sorted(expected_greys(image_folder))
    assert split_greys() == (train_greys, validation_greys)


def test_seeded_flips_are_random_but_repeatable(tmp_path):
    half_dark = np.zeros((20, 20, 3), np.uint8)
    half_dark[:, 10:] = 255  # dark on the left, light on the right
    Image.fromarray(half_dark).save(tmp_path / "half.png")

    def left_is_light(flip, seed):
        batches = load_folder(tmp_path, 8, 1, flip=flip, seed=seed, repetitions=40)
        return [bool(batch[0, :, 0].numpy().mean() > 0.5) for batch in batches]

    flipped = left_is_light(flip=True, seed=7)
    assert 5 < sum(flipped) < 35  # about half of the 40 copies
    assert left_is_light(flip=True, seed=7) == flipped
    assert not any(left_is_light(flip=False, seed=7))


def test_load_images_reads_a_folder_source(image_folder):
    batches = load_images(f"folder:{image_folder}", IMAGE_SIZE, 10, shuffle=False)
    assert image_greys(batches) == expected_greys(image_folder)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_folder(tmp_path / "no_such_folder", IMAGE_SIZE, 4)


def test_folder_without_images_lists_the_extensions_looked_for(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match=r"no images.*\.jpg, \.jpeg, \.png"):
        load_folder(tmp_path, IMAGE_SIZE, 4)


def test_undecodable_file_is_named(tmp_path):
    Image.new("RGB", (20, 20)).save(tmp_path / "good.png")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="bad.jpg"):
        load_folder(tmp_path, IMAGE_SIZE, 1)


def test_truncated_jpeg_is_named(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "whole.jpg")
    jpeg_bytes = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(jpeg_bytes[: len(jpeg_bytes) // 2])
    with pytest.raises(DatasetError, match="cut.jpg"):
        load_folder(tmp_path, IMAGE_SIZE, 1)


def test_too_few_images_for_one_batch_is_an_error(image_folder):
    with pytest.raises(DatasetError, match="fewer than batch_size=16"):
        load_folder(image_folder, IMAGE_SIZE, 16)
    assert count_images(load_folder(image_folder, IMAGE_SIZE, 16, drop_remainder=False)) == 10


@pytest.mark.parametrize("source", ["flowers", "folder:", "tfds:", "", "FOLDER:x"])
def test_unknown_source_string_is_rejected(source):
    with pytest.raises(ValueError, match="expected 'tfds'.*'tfds:NAME'.*'folder:PATH'"):
        load_images(source, IMAGE_SIZE, 4)


def test_unknown_tfds_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="'train'.*oxford_flowers102, caltech_birds2011, celeb_a"):
        load_images("tfds:train", IMAGE_SIZE, 4)


def test_tfds_split_with_a_folder_source_is_rejected(image_folder):
    with pytest.raises(ValueError, match="validation_fraction"):
        load_images(f"folder:{image_folder}", IMAGE_SIZE, 4, split="train")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"value_range": "minus_one_to_one"}, "value_range"),
        ({"validation_fraction": 1.5}, "validation_fraction"),
        ({"repetitions": 0}, "repetitions"),
    ],
)
def test_invalid_options_are_explained(image_folder, options, message):
    with pytest.raises(ValueError, match=message):
        load_folder(image_folder, IMAGE_SIZE, 2, **options)


def test_count_images_counts_batched_and_unbatched_datasets(image_folder):
    batches = load_folder(image_folder, IMAGE_SIZE, 3, drop_remainder=False)
    assert count_images(batches) == 10
    assert count_images(batches.unbatch()) == 10
