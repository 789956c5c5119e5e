"""Tests for diffusion_course.datasets, offline: each real tfds builder over files written here.

Each fixture writes, in a temporary folder, the few files that the dataset's tfds builder would
download (the same archive formats, names and text layouts, with a handful of images), serves
them to the builder's download manager, and lets `load_tfds` prepare real tfrecords in a
temporary data dir, as tests/test_data.py does for oxford_flowers102. The images are painted
so that the right crop shows one colour and a wrong one shows another.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import io  # noqa: E402
import socket  # noqa: E402
import tarfile  # noqa: E402
import zipfile  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
from PIL import Image  # noqa: E402

from diffusion_course.data import count_images, image_size_for, load_images, load_tfds  # noqa: E402
from diffusion_course.datasets import DATASETS, tfds_dataset  # noqa: E402

tfds.disable_progress_bar()

IMAGE_SIZE = 16
BACKGROUND = (40, 40, 220)  # outside the expected crop
PADDING = (40, 200, 40)  # inside the crop, outside the bird's box
SUBJECT = (220, 40, 40)  # the bird's box, or CelebA's central square
JPEG_TOLERANCE = 0.08  # in [0, 1] units


def jpeg_bytes(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95, subsampling=0)
    return buffer.getvalue()


def painted(height, width, *regions):
    """BACKGROUND everywhere, then each (colour, top, bottom, left, right) painted in order."""
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[:] = BACKGROUND
    for colour, top, bottom, left, right in regions:
        pixels[top:bottom, left:right] = colour
    return pixels


def served_downloads(local_paths):
    """A stand-in for DownloadManager.download and .download_and_extract: each URL (or dict
    key) is answered with the local path of the first `local_paths` key that it contains."""

    def local(url):
        return next(path for key, path in local_paths.items() if key in url)

    def answer(self, urls):
        if isinstance(urls, dict):
            return {key: local_paths[key] for key in urls}
        if isinstance(urls, (list, tuple)):
            return [local(url) for url in urls]
        return local(urls)

    return answer


def prepared_data_dir(tmp_path_factory, name, downloads, extractions=None):
    """A tfds data dir where `load_tfds` itself prepared `name` from the local files."""
    data_dir = tmp_path_factory.mktemp(f"{name}_tensorflow_datasets")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tfds.download.DownloadManager, "download", served_downloads(downloads))
        patch.setattr(tfds.download.DownloadManager, "download_and_extract",
                      served_downloads(extractions or downloads))
        patch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: [])
        split = tfds_dataset(name).train_split
        load_tfds(split, IMAGE_SIZE, 1, data_dir=str(data_dir), dataset=name)
    return str(data_dir)


def all_images(name, split, data_dir, image_size=IMAGE_SIZE):
    batches = load_tfds(split, image_size, 1, shuffle=False, data_dir=data_dir, dataset=name)
    return np.concatenate([batch.numpy() for batch in batches])


def unit(colour):
    return np.array(colour) / 255.0


def nearest_colours(images, colours):
    """For every pixel, the index of the nearest of `colours`."""
    distances = [np.linalg.norm(images - unit(colour), axis=-1) for colour in colours]
    return np.argmin(distances, axis=0)


# ---- caltech_birds2011 --------------------------------------------------------------------

BIRD_HEIGHT, BIRD_WIDTH = 96, 128
# (x, y, width, height) in pixels, as in bounding_boxes.txt. The first bird's longer side is 32,
# so its padded crop is 40 x 40 around the box's centre (68, 52): rows 32..72, columns 48..88.
# The second touches the left edge, so its crop narrows to the box's 16 columns, and the centre
# square of that is all bird.
BIRD_BOXES = {"middle": (52, 44, 32, 16), "edge": (0, 40, 16, 32)}
BIRD_CROPS = {"middle": (32, 72, 48, 88)}
BIRD_SPLITS = {"train": ["middle", "edge"], "test": ["middle"]}


def bird_pixels(box_name):
    x, y, width, height = BIRD_BOXES[box_name]
    crop = [(PADDING, *BIRD_CROPS[box_name])] if box_name in BIRD_CROPS else []
    return painted(BIRD_HEIGHT, BIRD_WIDTH, *crop, (SUBJECT, y, y + height, x, x + width))


def write_birds_download(folder):
    """CUB_200_2011.tgz (images, lists, boxes) and the extracted segmentations' PNG masks."""
    images_root, masks_root = folder / "images_extracted", folder / "segmentations_extracted"
    cub = images_root / "CUB_200_2011"
    image_lines, split_lines, box_lines = [], [], []
    index = 0
    for split, box_names in BIRD_SPLITS.items():
        for box_name in box_names:
            index += 1
            class_folder = f"{index:03d}.Bird_{box_name}"
            relative = f"{class_folder}/Bird_{box_name}_{index:04d}.jpg"
            (cub / "images" / class_folder).mkdir(parents=True)
            (cub / "images" / relative).write_bytes(jpeg_bytes(bird_pixels(box_name)))
            mask_folder = masks_root / "segmentations" / class_folder
            mask_folder.mkdir(parents=True)
            Image.new("L", (BIRD_WIDTH, BIRD_HEIGHT)).save(
                mask_folder / f"Bird_{box_name}_{index:04d}.png")
            image_lines.append(f"{index} {relative}")
            split_lines.append(f"{index} {int(split == 'train')}")
            box_lines.append(f"{index} " + " ".join(f"{v:.1f}" for v in BIRD_BOXES[box_name]))
    for file_name, lines in [("images.txt", image_lines), ("train_test_split.txt", split_lines),
                             ("bounding_boxes.txt", box_lines)]:
        (cub / file_name).write_text("\n".join(lines) + "\n")
    archive = folder / "CUB_200_2011.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(cub, arcname="CUB_200_2011")
    return {"CUB_200_2011": str(archive)}, {"CUB_200_2011": str(images_root),
                                            "segmentations": str(masks_root)}


@pytest.fixture(scope="module")
def birds_data_dir(tmp_path_factory):
    downloads, extractions = write_birds_download(tmp_path_factory.mktemp("birds_download"))
    return prepared_data_dir(tmp_path_factory, "caltech_birds2011", downloads, extractions)


def test_birds_splits_are_the_official_train_and_test(birds_data_dir):
    birds = tfds_dataset("caltech_birds2011")
    for split, box_names in BIRD_SPLITS.items():
        split_name = birds.train_split if split == "train" else birds.validation_split
        assert len(all_images(birds.name, split_name, birds_data_dir)) == len(box_names)


def test_birds_are_cropped_to_their_padded_bounding_box(birds_data_dir):
    images = all_images("caltech_birds2011", "test", birds_data_dir)  # the "middle" bird
    nearest = nearest_colours(images[0], [BACKGROUND, PADDING, SUBJECT])
    assert not np.any(nearest == 0), "the crop reaches outside the padded box"
    # the box is 16 of the crop's 40 rows and 32 of its 40 columns, in the middle
    assert nearest[8, 8] == 2 and nearest[0, 0] == nearest[15, 15] == 1
    rows_of_bird = np.flatnonzero(nearest[:, 8] == 2)
    assert 5 <= len(rows_of_bird) <= 8  # 16/40 of 16 rows = 6.4
    np.testing.assert_allclose(images[0][8, 8], unit(SUBJECT), atol=JPEG_TOLERANCE)


def test_a_bird_at_the_edge_keeps_its_box_centred(birds_data_dir):
    images = all_images("caltech_birds2011", "train", birds_data_dir)
    edge_images = [image for image in images if not np.any(
        nearest_colours(image, [BACKGROUND, PADDING, SUBJECT]) == 1)]
    assert len(edge_images) == 1  # the "middle" bird has padding, the edge bird none
    np.testing.assert_allclose(edge_images[0], np.broadcast_to(unit(SUBJECT), (16, 16, 3)),
                               atol=JPEG_TOLERANCE)


# ---- celeb_a ------------------------------------------------------------------------------

CELEBA_HEIGHT, CELEBA_WIDTH = 218, 178
CELEBA_PARTITION = [0, 0, 0, 1, 1, 2]  # train, train, train, validation, validation, test
LANDMARKS = ("lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y "
             "rightmouth_x rightmouth_y").split()


def write_celeba_download(folder):
    """img_align_celeba.zip and the four text files, in the layouts the builder parses."""
    # the central 140 x 140 square: rows 39..179, columns 19..159; a square of the whole
    # width (rows 20..198) would bring in 19 rows of background at the top and bottom
    face = painted(CELEBA_HEIGHT, CELEBA_WIDTH, (SUBJECT, 39, 179, 19, 159))
    names = [f"{index:06d}.jpg" for index in range(1, len(CELEBA_PARTITION) + 1)]
    archive = folder / "img_align_celeba.zip"
    with zipfile.ZipFile(archive, "w") as zip_file:
        for name in names:
            zip_file.writestr(f"img_align_celeba/{name}", jpeg_bytes(face))
    attribute_names = tfds.builder("celeb_a").info.features["attributes"].keys()

    def table(headings, row):
        return "\n".join([str(len(names)), " ".join(headings)]
                         + [f"{name} {row}" for name in names]) + "\n"

    texts = {
        "list_eval_partition": "".join(f"{name} {partition}\n"
                                       for name, partition in zip(names, CELEBA_PARTITION)),
        "list_attr_celeba": table(attribute_names, " ".join(["-1"] * len(attribute_names))),
        "landmarks_celeba": table(LANDMARKS, " ".join(["80"] * len(LANDMARKS))),
        "identity_celeba": "".join(f"{name} 7\n" for name in names),
    }
    paths = {"img_align_celeba": str(archive)}
    for key, text in texts.items():
        (folder / f"{key}.txt").write_text(text)
        paths[key] = str(folder / f"{key}.txt")
    return paths


@pytest.fixture(scope="module")
def celeba_data_dir(tmp_path_factory):
    downloads = write_celeba_download(tmp_path_factory.mktemp("celeba_download"))
    return prepared_data_dir(tmp_path_factory, "celeb_a", downloads)


def test_celeba_uses_the_official_train_and_validation_splits(celeba_data_dir):
    celeba = tfds_dataset("celeb_a")
    assert len(all_images("celeb_a", celeba.train_split, celeba_data_dir)) == 3
    assert len(all_images("celeb_a", celeba.validation_split, celeba_data_dir)) == 2


def test_celeba_faces_are_the_central_140_pixels(celeba_data_dir):
    images = all_images("celeb_a", "train", celeba_data_dir)
    np.testing.assert_allclose(images, np.broadcast_to(unit(SUBJECT), images.shape),
                               atol=JPEG_TOLERANCE)


# ---- cifar10 ------------------------------------------------------------------------------

CIFAR_TRAIN_FILES = [f"data_batch_{number}.bin" for number in range(1, 6)]
CIFAR_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck"]


def cifar_pixels(count, seed):
    return np.random.default_rng(seed).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)


def write_cifar_download(folder):
    """cifar-10-batches-bin/: records of one label byte and 3,072 bytes (the red, green and blue
    planes), one image per training file and two in the test file."""
    batches = folder / "cifar-10-batches-bin"
    batches.mkdir()
    files = {name: cifar_pixels(1, seed) for seed, name in enumerate(CIFAR_TRAIN_FILES)}
    files["test_batch.bin"] = cifar_pixels(2, seed=99)
    for name, images in files.items():
        records = [bytes([index % 10]) + image.transpose(2, 0, 1).tobytes()
                   for index, image in enumerate(images)]
        (batches / name).write_bytes(b"".join(records))
    (batches / "batches.meta.txt").write_text("\n".join(CIFAR_LABELS) + "\n")
    train = np.concatenate([files[name] for name in CIFAR_TRAIN_FILES])
    return {"cifar-10": str(folder)}, train, files["test_batch.bin"]


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    downloads, train, test = write_cifar_download(tmp_path_factory.mktemp("cifar_download"))
    return prepared_data_dir(tmp_path_factory, "cifar10", downloads), train, test


def in_content_order(images, pixels):
    """`images` ([0, 1] floats) and `pixels` (uint8), each sorted by its pixel bytes."""
    keys = [image.tobytes() for image in np.round(images * 255.0).astype(np.uint8)]
    return (images[np.argsort(keys, kind="stable")],
            pixels[np.argsort([pixel.tobytes() for pixel in pixels], kind="stable")])


def test_cifar_images_are_the_32_pixel_originals_unchanged(cifar):
    data_dir, train, test = cifar
    dataset = tfds_dataset("cifar10")
    for split, originals in [(dataset.train_split, train), (dataset.validation_split, test)]:
        images = all_images("cifar10", split, data_dir, image_size=32)
        images, originals = in_content_order(images, originals)
        # exactly the stored bytes / 255: no crop and no resampling at 32 px
        np.testing.assert_allclose(images * 255.0, originals, atol=1e-3)


def test_tfds_source_strings_name_the_dataset(cifar):
    data_dir = cifar[0]
    batches = load_images("tfds:cifar10", IMAGE_SIZE, 1, split="test", shuffle=False,
                          data_dir=data_dir)
    assert count_images(batches) == 2


def test_every_dataset_has_its_own_download_host_and_card_text():
    assert set(DATASETS) == {"oxford_flowers102", "caltech_birds2011", "celeb_a", "cifar10"}
    for dataset in DATASETS.values():
        assert tfds.builder(dataset.name).name == dataset.name  # a real tfds name
        assert dataset.download_host and len(dataset.description) > 40


@pytest.mark.parametrize("source, profile_size, expected", [
    ("tfds:cifar10", 64, 32), ("tfds:cifar10", 16, 16), ("tfds", 64, 64),
    ("tfds:celeb_a", 64, 64), ("folder:anything", 64, 64), ("synthetic", 64, 64)])
def test_cifar_trains_at_no_more_than_its_32_pixels(source, profile_size, expected):
    assert image_size_for(source, profile_size) == expected
