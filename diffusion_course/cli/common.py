"""What the commands share: the two models by name, their data, their images, and KID.

Nothing here imports TensorFlow at module level, so that `--help` is instant.

Both models are driven through one small interface so that training, sampling and evaluation
need no per-model branches: `generate(num_images, diffusion_steps, initial_noise, seed)`
returns images in [0, 1]. `DiffusionModel` (DDIM) has it; `DDPMImages` gives it to a
`DDPMModel` through the compiled samplers.
"""

import argparse
from pathlib import Path
from types import SimpleNamespace

import numpy as np

MODEL_NAMES = ("ddim", "ddpm")
SAMPLER_NAMES = ("ddim", "ddpm")
KID_FEATURES = ("inception", "offline")
SWITCH_CHOICES = {"auto": "auto", "on": True, "off": False}
# DDIM steps that the DDPM model samples with for KID and epoch grids; its own ancestral
# sampler needs all 1000 timesteps, too slow to run every epoch
DDPM_PREVIEW_STEPS = 50
SYNTHETIC_SOURCE = "synthetic"


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
    """argparse type: "tfds", "synthetic" or "folder:PATH" (the folder is checked on loading)."""
    if text in ("tfds", SYNTHETIC_SOURCE) or (text.startswith("folder:") and len(text) > 7):
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a data source: use 'tfds' (Oxford Flowers 102), 'folder:PATH' (a folder "
        "of JPEG/PNG images) or 'synthetic' (generated test images, for machines without data)"
    )


def add_checkpoint_argument(parser):
    parser.add_argument("checkpoint", type=Path,
                        help="a checkpoint folder, or a training run's folder (its best "
                             "checkpoint)")


def add_kid_arguments(parser):
    parser.add_argument("--kid-features", choices=KID_FEATURES, default=None,
                        help="features for KID: 'inception' (InceptionV3/ImageNet, the course's "
                             "KID; needs its weights) or 'offline' (weight-free statistics, not "
                             "comparable with Inception KID) (default: inception)")
    parser.add_argument("--kid-batches", type=positive_int, default=None,
                        help="validation batches to measure KID on (default: all)")


# ---- models -----------------------------------------------------------------------------------


def model_name_of(config):
    """"ddim" or "ddpm", from a configuration object or a checkpoint's `config_class`."""
    class_name = config if isinstance(config, str) else type(config).__name__
    names = {"DDIMConfig": "ddim", "DDPMConfig": "ddpm"}
    if class_name not in names:
        raise CommandError(f"config class {class_name!r} is not a course model; expected "
                           f"{sorted(names)}.")
    return names[class_name]


def config_class(model_name):
    from diffusion_course.config import DDIMConfig, DDPMConfig

    return {"ddim": DDIMConfig, "ddpm": DDPMConfig}[model_name]


def reference_ddim_class():
    """The DDIM model with the instructor's three functions, from the instructor-only package.

    The library holds no solutions, so training or sampling DDIM needs `autograder/`.
    """
    try:
        from autograder.reference import ReferenceDiffusionModel
    except (ImportError, OSError) as error:
        raise CommandError(
            "The DDIM model needs the instructor's reference functions from the instructor-only "
            f"package `autograder` (autograder/reference.py), which failed to import: {error}.\n"
            "Run the command from the root of the course repository (python -m puts the "
            "current folder on the import path), or add that folder to PYTHONPATH."
        ) from error
    return ReferenceDiffusionModel


def build_model(model_name, config, seed=None, trainable=True):
    """A model for `config`. DDIM needs the reference functions to train or sample, but not to
    hold weights (`trainable=False`, e.g. to verify a checkpoint)."""
    if model_name == "ddpm":
        from diffusion_course.ddpm import DDPMModel

        return DDPMModel(config, seed=seed)
    if trainable:
        return reference_ddim_class()(config, seed=seed)
    from diffusion_course.ddim import DiffusionModel

    return DiffusionModel(config, seed=seed)


def config_from_manifest(manifest):
    """The configuration object that a checkpoint's manifest records."""
    model_name = model_name_of(manifest.get("config_class") or "(none)")
    if not isinstance(manifest.get("config"), dict):
        raise CommandError("The manifest records no configuration, so no model can be built "
                           "for it; regenerate the checkpoint.")
    return config_class(model_name).from_dict(manifest["config"])


def load_model(checkpoint, seed=None, trainable=True):
    """(model, manifest) from a checkpoint folder, its configuration and model read from it."""
    from diffusion_course.checkpoints import load_checkpoint, read_manifest

    # the speed options suit the machine that trained it; this one decides its own
    config = config_from_manifest(read_manifest(checkpoint)).replace(
        jit_compile="auto", mixed_precision="auto")
    model = build_model(model_name_of(config), config, seed=seed, trainable=trainable)
    manifest = load_checkpoint(checkpoint, model.checkpoint_parts(), config)
    return model, manifest


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
    network through a compiled sampler ("ddpm": all timesteps; "ddim": deterministic DDIM in
    `diffusion_steps` steps)."""

    def __init__(self, model, sampler="ddim"):
        self.model = model
        self.config = model.config
        self.sampler_name = sampler
        self._samplers = {}

    def sampler(self, diffusion_steps):
        from diffusion_course.samplers import DDIMSampler, DDPMSampler

        key = self.sampler_name if self.sampler_name == "ddpm" else diffusion_steps
        if key not in self._samplers:  # each sampler compiles its loop once
            self._samplers[key] = (
                DDPMSampler(self.model.diffusion) if self.sampler_name == "ddpm"
                else DDIMSampler(self.model.diffusion, num_steps=diffusion_steps))
        return self._samplers[key]

    def generate(self, num_images, diffusion_steps, initial_noise=None, seed=0):
        import keras

        if initial_noise is None:
            size = self.config.image_size
            initial_noise = keras.random.normal((num_images, size, size, 3), seed=seed)
        images = self.sampler(diffusion_steps).sample(self.model.ema_network, initial_noise,
                                                      seed=seed)
        return to_unit_range(images)


def to_unit_range(images):
    """DDPM's [-1, 1] pixel values as [0, 1], clipped."""
    return np.clip((np.asarray(images) + 1.0) / 2.0, 0.0, 1.0)


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
    if source == "tfds":
        return "tfds: Oxford Flowers 102 through tensorflow-datasets"
    return f"{source}: the JPEG/PNG images in that folder"


def load_splits(model_name, source, config, seed):
    """(train, validation) batches: training images in the model's range, validation in [0, 1].

    DDIM uses the assignment's 80%/20% split. DDPM trains, as in the lab, on every flower image
    (`DDPM_TRAIN_SPLIT`), so its KID is measured on images it has seen; on a folder or the
    synthetic images both models use the same 80%/20% split, the images once per epoch.
    """
    from diffusion_course import data

    if model_name == "ddim":
        return data.load_ddim_splits(source, config, seed)
    common = dict(image_size=config.image_size, batch_size=config.batch_size, seed=seed)
    if source == "tfds":
        return (data.load_tfds(data.DDPM_TRAIN_SPLIT, value_range="symmetric", **common),
                data.load_tfds(data.DDIM_VALIDATION_SPLIT, **common))
    # load_ddim_splits reads only these three fields
    splits_config = SimpleNamespace(dataset_repetitions=1, image_size=config.image_size,
                                    batch_size=config.batch_size)
    train, validation = data.load_ddim_splits(source, splits_config, seed)
    # the same arithmetic as value_range="symmetric" (DDPM section 3.3)
    return train.map(lambda images: images * 2.0 - 1.0), validation


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


def configure_cpu_threads(profile):
    """Runs each TensorFlow op on one thread for the quick profile on a CPU; returns the number
    of threads per op (0: TensorFlow's default, one per core).

    The quick networks' ops are too small to split between cores: with one thread per op (ops
    still run side by side) a 2-core CPU trains them 1.3-1.5x faster, while the full profile's
    convolutions get slower (0.31 instead of 0.41 DDIM steps/s). TensorFlow fixes its threads
    when it runs its first op, so call this first; afterwards it changes nothing.
    """
    import tensorflow as tf

    from diffusion_course.devices import has_gpu

    threads = 1 if profile == "quick" and not has_gpu() else 0
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow has started already: keep what it has
        return tf.config.threading.get_intra_op_parallelism_threads()
    return threads


def seed_everything(seed):
    """Seeds Python, NumPy, TensorFlow and Keras. tf.data's shuffles depend on TensorFlow's
    global seed too, so it must be set before any dataset is made."""
    import keras

    keras.utils.set_random_seed(int(seed))


def make_deterministic(seed):
    """Seeds everything, and makes TensorFlow's ops deterministic."""
    import tensorflow as tf

    seed_everything(seed)
    # without it, multithreaded kernels may sum in a different order in each run, and two runs
    # with one seed would drift apart after a few steps (and a resumed run from an unbroken one)
    tf.config.experimental.enable_op_determinism()


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
