"""The course's two models by name: their configurations, how to build one, how to load one.

    model, manifest = load_model("data/checkpoints/quick/ddpm")

"ddim" is the assignment's continuous-time model (`DiffusionModel`), "ddpm" the lab's
(`DDPMModel`). The library holds no solution of the assignment, so a DDIM model that trains or
samples takes the instructor's functions from `autograder/reference.py`; one that only holds
weights (to verify or export a checkpoint) does not need them.
"""

MODEL_NAMES = ("ddim", "ddpm")
_CONFIG_CLASS_NAMES = {"DDIMConfig": "ddim", "DDPMConfig": "ddpm"}


class UnknownModelError(ValueError):
    """A configuration or a checkpoint belongs to no course model."""


class ReferenceUnavailableError(RuntimeError):
    """The instructor's reference functions, which a working DDIM model needs, fail to import."""


def model_name_of(config):
    """"ddim" or "ddpm", from a configuration object or a checkpoint's `config_class`."""
    class_name = config if isinstance(config, str) else type(config).__name__
    if class_name not in _CONFIG_CLASS_NAMES:
        raise UnknownModelError(f"config class {class_name!r} is not a course model; expected "
                                f"{sorted(_CONFIG_CLASS_NAMES)}.")
    return _CONFIG_CLASS_NAMES[class_name]


def config_class(model_name):
    """`DDIMConfig` or `DDPMConfig`."""
    from diffusion_course.config import DDIMConfig, DDPMConfig

    return {"ddim": DDIMConfig, "ddpm": DDPMConfig}[model_name]


def reference_ddim_class():
    """The DDIM model with the instructor's three functions, from the instructor-only package."""
    try:
        from autograder.reference import ReferenceDiffusionModel
    except (ImportError, OSError) as error:
        raise ReferenceUnavailableError(
            "The DDIM model needs the instructor's reference functions from the instructor-only "
            f"package `autograder` (autograder/reference.py), which failed to import: {error}.\n"
            "Run from the root of the course repository (python -m puts the current folder on "
            "the import path), or add that folder to PYTHONPATH."
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
    from diffusion_course.checkpoints import CheckpointCorruptError

    model_name = model_name_of(manifest.get("config_class") or "(none)")
    if not isinstance(manifest.get("config"), dict):
        raise CheckpointCorruptError("The manifest records no configuration, so no model can be "
                                     "built for it; regenerate the checkpoint.")
    try:
        return config_class(model_name).from_dict(manifest["config"])
    except TypeError as error:  # a field of the wrong type, e.g. widths: null
        raise CheckpointCorruptError(
            f"The manifest's configuration is not a valid {manifest['config_class']} ({error}); "
            "it was modified. Re-copy the checkpoint or regenerate it.") from error


def load_model(checkpoint, seed=None, trainable=True):
    """(model, manifest) from a checkpoint folder, its configuration and model read from it."""
    from diffusion_course.checkpoints import load_checkpoint, read_manifest

    # the speed options suit the machine that trained it; this one decides its own
    config = config_from_manifest(read_manifest(checkpoint)).replace(
        jit_compile="auto", mixed_precision="auto")
    model = build_model(model_name_of(config), config, seed=seed, trainable=trainable)
    manifest = load_checkpoint(checkpoint, model.checkpoint_parts(), config)
    return model, manifest
