"""The notebooks' settings: one set of names, a labelled offline fallback, errors naming settings.

"Offline" is made here as in tests/test_data.py and tests/test_kid.py: name resolution fails at
once, and the Keras cache is empty.
"""

import logging
import os
import socket
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
import tensorflow_datasets as tfds

from diffusion_course import settings
from diffusion_course.config import DDIMConfig
from diffusion_course.synthetic import synthetic_garden

CONFIG = DDIMConfig.from_profile("quick")


@pytest.fixture
def offline(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(urllib.request, "getproxies", dict)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    if tfds.builder("oxford_flowers102").is_prepared():
        pytest.skip("Oxford Flowers is downloaded on this machine: nothing to fall back from")


def test_without_internet_the_flowers_fall_back_on_labelled_synthetic_images(offline, capsys):
    train, _, source = settings.load_flowers("ddim", "tfds", CONFIG, seed=0)
    assert source == "synthetic"
    garden = synthetic_garden(1024, 16, seed=0)  # shuffled by the pipeline: look each one up
    for image in next(iter(train)).numpy():
        assert np.abs(garden - image).max(axis=(1, 2, 3)).min() < 1e-6
    printed = capsys.readouterr().out
    assert "could not be downloaded" in printed and "FLOWERS_SOURCE=folder:" in printed
    assert "(synthetic images)" in printed
    assert settings.labelled("training images", source) == "training images (synthetic images)"
    assert settings.labelled("training images", "tfds") == "training images"


def test_without_internet_kid_falls_back_on_the_named_offline_features(offline, capsys):
    encoder, features = settings.kid_encoder("inception", CONFIG.image_size)
    assert features == "offline" and encoder.feature_name.startswith("offline")
    printed = capsys.readouterr().out
    assert "KID_FEATURES=offline" in printed and "not comparable" in printed


def test_wrong_settings_stop_with_an_error_naming_the_setting(tmp_path, monkeypatch):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(settings.SettingError, match="FLOWERS_SOURCE='folder:.*no-such-folder'"):
        settings.load_flowers("ddpm", f"folder:{missing}", CONFIG)
    monkeypatch.setenv("FLOWERS_SOURCE", "flowers")
    with pytest.raises(settings.SettingError, match="Set FLOWERS_SOURCE to tfds"):
        settings.flowers_source()
    monkeypatch.setenv("FLOWERS_SOURCE", "synthetic")
    assert settings.flowers_source() == "synthetic"
    monkeypatch.setenv("KID_FEATURES", "imagenet")
    with pytest.raises(settings.SettingError, match="Set KID_FEATURES to inception .* or offline"):
        settings.kid_features()
    monkeypatch.delenv("KID_FEATURES")
    assert settings.kid_features() == "inception"


QUIET_IMPORT = """
import sys
from diffusion_course.quiet import quiet_tensorflow_startup
quiet_tensorflow_startup()
import tensorflow as tf
tf.constant(1.0) + 1  # initialises the devices: cuInit on a machine without a GPU
import os
os.write(2, b"a real error\\n")
"""


def test_tensorflow_starts_without_its_log_noise_but_real_errors_still_show():
    environment = {key: value for key, value in os.environ.items()
                   if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", QUIET_IMPORT],
                            capture_output=True, text=True, env=environment, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "a real error\n"  # and no absl, oneDNN, cuda or tfds lines


def test_tfds_warning_about_a_missing_download_is_dropped_and_others_kept(caplog):
    from diffusion_course.quiet import quiet_tensorflow_startup

    quiet_tensorflow_startup()
    absl_logger = logging.getLogger("absl")
    absl_logger.warning("Variant folder /x/oxford_flowers102/2.1.1 has no dataset_info.json")
    absl_logger.warning("Something else went wrong")
    assert [record.getMessage() for record in caplog.records] == ["Something else went wrong"]
