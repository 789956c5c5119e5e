"""The settings of the course notebooks, and their one offline policy.

The assignment, the three labs and the README use the same environment variables, set before
starting Jupyter:

    DIFFUSION_PROFILE   full | quick                       default: full with a GPU, else quick
    FLOWERS_SOURCE      tfds | folder:PATH | synthetic     default: tfds (Oxford Flowers 102)
    KID_FEATURES        inception | offline                default: inception (ImageNet weights)

Offline policy, a labelled fallback: when Oxford Flowers cannot be downloaded, a notebook goes
on with synthetic flower-like images; it prints why and which setting to change, and the title
of every picture made from them ends in "(synthetic images)". When the InceptionV3 weights
cannot be downloaded, KID uses the offline features; it prints so, and every KID printed or
plotted names its features. A setting that names something wrong (a folder that does not exist,
an unknown value) is no fallback case: it stops with an error that names the setting.
"""

import os

from diffusion_course.data import DatasetError, DatasetUnavailableError, load_splits, parse_source
from diffusion_course.kid import InceptionWeightsUnavailableError, make_encoder

SOURCE_SETTING = "FLOWERS_SOURCE"
KID_SETTING = "KID_FEATURES"
SYNTHETIC = "synthetic"
KID_CHOICES = ("inception", "offline")


class SettingError(ValueError):
    """A notebook setting has a value that cannot work; the message names the setting."""


def _first_line(error):
    return str(error).strip().splitlines()[0]


def flowers_source():
    """FLOWERS_SOURCE, checked: "tfds" (the default), "folder:PATH" or "synthetic"."""
    source = os.environ.get(SOURCE_SETTING, "tfds")
    if source != SYNTHETIC:
        try:
            parse_source(source)
        except ValueError:
            raise SettingError(
                f"{SOURCE_SETTING}={source!r} is not an image source. Set {SOURCE_SETTING} to "
                "tfds (Oxford Flowers 102, downloaded once), folder:/path/to/images (your own "
                "JPEG/PNG files) or synthetic, then restart the kernel."
            ) from None
    return source


def kid_features():
    """KID_FEATURES, checked: "inception" (the default) or "offline"."""
    features = os.environ.get(KID_SETTING, "inception")
    if features not in KID_CHOICES:
        raise SettingError(
            f"{KID_SETTING}={features!r} is not a KID feature extractor. Set {KID_SETTING} to "
            "inception (InceptionV3 with ImageNet weights) or offline (weight-free colour and "
            "texture statistics), then restart the kernel."
        )
    return features


def labelled(title, source):
    """`title`, marked "(synthetic images)" when the pictures come from synthetic data."""
    return f"{title} (synthetic images)" if source == SYNTHETIC else title


def load_flowers(model_name, source, config, seed=None):
    """(train, validation, source actually used): `data.load_splits`, with the offline policy.

    Oxford Flowers that cannot be downloaded fall back on the synthetic images, said loudly;
    a folder that cannot be read stops with an error naming FLOWERS_SOURCE.
    """
    try:
        return (*load_splits(model_name, source, config, seed=seed), source)
    except DatasetUnavailableError as error:
        print(f"Oxford Flowers 102 is not on this machine and could not be downloaded "
              f"({_first_line(error)}).\n"
              "USING SYNTHETIC FLOWER-LIKE IMAGES INSTEAD: every picture made from them says "
              "'(synthetic images)' in its title.\n"
              f"For real flowers, set {SOURCE_SETTING}=folder:/path/to/your/jpgs before "
              "starting Jupyter, or download them once with internet (README: 'Without "
              "internet').")
        return (*load_splits(model_name, SYNTHETIC, config, seed=seed), SYNTHETIC)
    except DatasetError as error:
        raise SettingError(
            f"{SOURCE_SETTING}={source!r} cannot be used: {error}\nChange {SOURCE_SETTING} "
            "(folder:/path/to/images, tfds or synthetic) and restart the kernel."
        ) from None


def kid_encoder(features, image_size):
    """(encoder, features actually used): `kid.make_encoder`, with the offline policy.

    Without the InceptionV3 weights, KID falls back on the offline features, said loudly.
    """
    try:
        return make_encoder(features, image_size), features
    except InceptionWeightsUnavailableError as error:
        print(f"The InceptionV3 weights for KID are not on this machine and could not be "
              f"downloaded ({_first_line(error)}).\n"
              "USING THE OFFLINE KID FEATURES INSTEAD: their values are not comparable with "
              "Inception KIDs, and every KID printed or plotted names its features.\n"
              f"To silence this, set {KID_SETTING}=offline; for Inception KIDs, copy the "
              "weights file into ~/.keras/models/ (README: 'Without internet').")
        return make_encoder("offline", image_size), "offline"
