"""The up-front check of a folder's images decodes what TensorFlow's pipeline decodes, and
names the file it cannot; file names need not be UTF-8."""

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffusion_course.data import DatasetError, count_images, load_folder


def write_images(folder, count):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}.png")


def break_idat_checksum(path):
    """Flips the CRC of the PNG's first IDAT chunk (PNG spec, 5.3: length, type, data, CRC)."""
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") - 4
    (length,) = struct.unpack(">I", data[start:start + 4])
    crc_at = start + 8 + length
    assert struct.unpack(">I", data[crc_at:crc_at + 4])[0] == zlib.crc32(
        data[start + 4:crc_at])  # found the chunk's CRC
    data[crc_at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_png_with_a_bad_idat_checksum_is_named_before_loading(tmp_path):
    write_images(tmp_path, 4)
    broken = tmp_path / "2.png"
    break_idat_checksum(broken)
    with Image.open(broken) as image:  # Pillow does not check it: the old check passed it
        image.load()
    with pytest.raises(DatasetError, match=f"Cannot decode image file {broken}"):
        load_folder(tmp_path, image_size=16, batch_size=2)


def test_a_file_name_that_is_not_utf8_loads(tmp_path):
    write_images(tmp_path, 3)
    os.rename(tmp_path / "0.png", os.fsdecode(bytes(tmp_path) + b"/\xff.png"))
    assert Path(os.fsdecode(bytes(tmp_path) + b"/\xff.png")).is_file()
    images = load_folder(tmp_path, image_size=16, batch_size=1, shuffle=False)
    assert count_images(images) == 3
