"""What the commands share: argument types and errors, images from either model, and KID.

Nothing here imports TensorFlow at module level, so that `--help` is instant.

Both models are driven through one small interface so that training, sampling and evaluation
need no per-model branches: `generate(num_images, diffusion_steps, initial_noise, seed)`
returns images in [0, 1]. `DiffusionModel` (DDIM) has it; `DDPMImages` gives it to a
`DDPMModel` through the compiled samplers.
"""

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from diffusion_course.models import model_name_of

KID_FEATURES = ("inception", "offline")
SWITCH_CHOICES = {"auto": "auto", "on": True, "off": False}
# DDIM steps that the DDPM model samples with for KID and epoch grids; its own ancestral
# sampler needs all 1000 timesteps, too slow to run every epoch
DDPM_PREVIEW_STEPS = 50
SYNTHETIC_SOURCE = "synthetic"
FILES_NAMED = 5  # at most, per kind of change, in a message about changed data


class CommandError(Exception):
    """A command cannot go on; the message says what was wrong and what to do (exit code 1)."""


class UsageError(Exception):
    """The command-line arguments do not fit together (exit code 2, like argparse's errors)."""


# ---- argument types ---------------------------------------------------------------------------


def integer_type(low, high=None):
    """An argparse type: an integer from `low` to `high` (or with no upper bound)."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            allowed = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"{value} is invalid: it must be {allowed}")
        return value

    return parse


positive_int = integer_type(1)
seed_int = integer_type(0, 2**31 - 2)  # TensorFlow's random seeds are int32


def decay(text):
    """argparse type: a decay rate in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{value} is invalid: it must be in [0, 1)")
    return value


def data_source(text):
    """argparse type: "tfds", "tfds:NAME", "synthetic" or "folder:PATH" (the folder is checked
    on loading)."""
    if text in ("tfds", SYNTHETIC_SOURCE) or (text.startswith("folder:") and len(text) > 7):
        return text
    from diffusion_course.datasets import DATASETS  # imports TensorFlow: only when needed

    if text.startswith("tfds:") and text[len("tfds:"):] in DATASETS:
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a data source: use 'tfds' (Oxford Flowers 102), 'tfds:NAME' (NAME one "
        f"of {', '.join(DATASETS)}), 'folder:PATH' (a folder of JPEG/PNG images) or 'synthetic' "
        "(generated test images, for machines without data)"
    )


def add_checkpoint_argument(parser):
    parser.add_argument("checkpoint", type=Path,
                        help="a checkpoint folder, or a training run's folder (its best "
                             "checkpoint)")


def add_kid_arguments(parser, default="inception"):
    parser.add_argument("--kid-features", choices=KID_FEATURES, default=None,
                        help="features for KID: 'inception' (InceptionV3/ImageNet, the course's "
                             "KID; needs its weights) or 'offline' (weight-free statistics, not "
                             f"comparable with Inception KID) (default: {default})")
    parser.add_argument("--kid-batches", type=positive_int, default=None,
                        help="validation batches to measure KID on (default: all)")


# ---- checkpoints ------------------------------------------------------------------------------


def resolve_checkpoint(path):
    """A checkpoint folder, or a training run's folder, which means its best checkpoint."""
    path = Path(path)
    best = path / "best"
    if not (path / "manifest.json").is_file() and (best / "manifest.json").is_file():
        print(f"{path} is a training run: using its best checkpoint, {best}")
        return best
    return path


# ---- images -----------------------------------------------------------------------------------


class DDPMImages:
    """Gives a `DDPMModel` the `generate` of `DiffusionModel`: images in [0, 1], from its EMA
    network through a compiled sampler ("ddpm": all timesteps; "ddim": DDIM with `eta` in
    `diffusion_steps` steps, deterministic at η = 0)."""

    def __init__(self, model, sampler="ddim", eta=0.0):
        self.model = model
        self.config = model.config
        self.sampler_name = sampler
        self.eta = eta
        self._samplers = {}

    def sampler(self, diffusion_steps):
        from diffusion_course.samplers import DDIMSampler, DDPMSampler

        key = self.sampler_name if self.sampler_name == "ddpm" else diffusion_steps
        if key not in self._samplers:  # each sampler compiles its loop once
            self._samplers[key] = (
                DDPMSampler(self.model.diffusion) if self.sampler_name == "ddpm"
                else DDIMSampler(self.model.diffusion, num_steps=diffusion_steps, eta=self.eta))
        return self._samplers[key]

    def evaluations_for(self, diffusion_steps):
        """The network evaluations of sampling with `diffusion_steps` steps."""
        return self.sampler(diffusion_steps).network_evaluations

    def generate(self, num_images, diffusion_steps, initial_noise=None, seed=0):
        from diffusion_course import samplers
        from diffusion_course.data import to_unit_range

        if initial_noise is None:
            initial_noise = samplers.initial_noise(num_images, self.config.image_size, seed)
        images = self.sampler(diffusion_steps).sample(self.model.ema_network, initial_noise,
                                                      seed=seed)
        return to_unit_range(images)


def image_generator(model, sampler="ddim"):
    """The object whose `generate` gives the model's images in [0, 1]."""
    return DDPMImages(model, sampler) if model_name_of(model.config) == "ddpm" else model


def preview_steps(config):
    """Sampling steps for the KID and the sample grids measured during training."""
    if model_name_of(config) == "ddim":
        return config.kid_diffusion_steps, config.plot_diffusion_steps
    return DDPM_PREVIEW_STEPS, DDPM_PREVIEW_STEPS


# ---- data -------------------------------------------------------------------------------------


def describe_source(source):
    if source == SYNTHETIC_SOURCE:
        return ("synthetic: diffusion_course.synthetic flower-like images, not Oxford Flowers "
                "(for machines without the real data)")
    from diffusion_course.data import parse_source
    from diffusion_course.datasets import tfds_dataset

    kind, location = parse_source(source)
    if kind == "tfds":
        return f"{source}: {tfds_dataset(location).title} through tensorflow-datasets"
    return f"{source}: the JPEG/PNG images in that folder"


class DataFingerprint:
    """The sha256 of every image file of a folder source, by its path inside the folder."""

    def __init__(self, files):
        self.files = files  # {relative path: [size in bytes, sha256]}

    def summary(self):
        """What a manifest records: the number of images, their bytes, one sha256 of all."""
        listing = json.dumps(self.files, sort_keys=True).encode("utf-8")
        return {"images": len(self.files),
                "bytes": sum(size for size, _ in self.files.values()),
                "sha256": hashlib.sha256(listing).hexdigest()}

    def difference(self, recorded_files):
        """The files added, removed and changed since `recorded_files`, in words."""
        kinds = {"added": sorted(set(self.files) - set(recorded_files)),
                 "removed": sorted(set(recorded_files) - set(self.files)),
                 "changed": sorted(name for name in set(self.files) & set(recorded_files)
                                   if list(self.files[name]) != list(recorded_files[name]))}
        return "; ".join(
            f"{len(names)} {kind} ({', '.join(names[:FILES_NAMED])}"
            f"{', ...' if len(names) > FILES_NAMED else ''})"
            for kind, names in kinds.items() if names) or "the files were reordered"


def data_fingerprint(source):
    """The `DataFingerprint` of a "folder:PATH" source; None for "tfds" and "synthetic", which
    the installed packages fix."""
    if not source.startswith("folder:"):
        return None
    from diffusion_course.checkpoints import file_sha256
    from diffusion_course.data import list_image_files

    folder = Path(source.removeprefix("folder:")).expanduser()
    return DataFingerprint({path.relative_to(folder).as_posix(): [path.stat().st_size,
                                                                  file_sha256(path)]
                            for path in list_image_files(folder)})


def validation_batches(validation, max_batches=None):
    """The validation batches as NumPy arrays, read once, so every KID sees the same batches."""
    batches = validation if max_batches is None else validation.take(max_batches)
    return [np.asarray(batch) for batch in batches]


def make_kid(kind, image_size):
    """The KID metric with the named features, or a clear error saying how to get them."""
    from diffusion_course.kid import KID, InceptionWeightsUnavailableError, make_encoder

    try:
        return KID(make_encoder(kind, image_size))
    except InceptionWeightsUnavailableError as error:
        raise CommandError(
            f"{error}\nOn the command line, --kid-features offline chooses the weight-free "
            "features (their KID is labelled as such and is not comparable with Inception KID)."
        ) from error


def sampling_plan(config, sampler, steps, default_sampler, default_steps):
    """The (sampler, steps) to use, or a UsageError for a combination the model cannot run."""
    if model_name_of(config) == "ddim":
        if sampler == "ddpm":
            raise UsageError("--sampler ddpm applies to DDPM checkpoints; a DDIM checkpoint "
                             "samples with the assignment's reverse_diffusion (--sampler ddim).")
        return "ddim", steps or default_steps
    sampler = sampler or default_sampler
    if sampler == "ddpm":
        if steps not in (None, config.timesteps):
            raise UsageError(f"--steps {steps}: the DDPM sampler runs every one of the model's "
                             f"{config.timesteps} timesteps. For fewer steps use --sampler ddim.")
        return "ddpm", config.timesteps
    if steps is not None and steps > config.timesteps:
        raise UsageError(f"--steps {steps} is more than the model's {config.timesteps} timesteps; "
                         "DDIM can skip timesteps but not add any.")
    return "ddim", steps or default_steps
