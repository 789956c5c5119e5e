"""The reference checkpoints of the course: which training runs make them, and where they live.

    data/checkpoints/<profile>/<model>/     e.g. data/checkpoints/quick/ddpm/

Each is the best checkpoint (lowest validation KID) of one training run with a fixed seed, and
holds the parts of `model.checkpoint_parts()`: `network`, `ema_network` and, for DDIM,
`normalizer`, and a model card (`README.md`, see `model_card.py`). One command makes all of a
profile's:

    python -m diffusion_course references --profile quick

The quick ones are committed and used by CI and the autograder on a CPU. Their manifests record
the fingerprint of the code that trained them (training_fingerprint.py), and a fast test fails
when today's code differs: regenerate them then. They train on the
synthetic images (`diffusion_course.synthetic`), because the machines that build the course
have no internet, and measure KID with the weight-free offline features; their manifests say
both. The full ones train on Oxford Flowers with Inception KID, on a GPU, and are published
outside git (see data/README.md).
"""

import dataclasses
import tempfile
from pathlib import Path

DEFAULT_ROOT = Path("data") / "checkpoints"


@dataclasses.dataclass(frozen=True)
class ReferenceRun:
    """One reference: what to train, on what, with which seed and KID features."""

    model: str
    seed: int
    data: str
    kid_features: str
    epochs: int | None = None  # None: the profile's num_epochs
    ema: float | None = None  # None: the profile's
    kid_batches: int | None = None  # None: every validation batch


# The quick runs average the EMA network over ~100 steps (ema=0.99, the quick profile's): with
# the full profile's 0.999, an average over ~1000 steps, a run of a few hundred steps would
# sample from weights that are still mostly their random initialisation. The decay is written
# out so that the table below stays true if a profile changes. They train on `synthetic_garden`
# (the source "synthetic"), whose flowers a network this small learns to draw recognisably;
# their epochs (64 steps each) fit a TA's CPU budget: measured 12 min (DDIM) + 48 min (DDPM) on
# the 2-core build machine while 8 other jobs ran (load 15-30); the DDIM run took 2.4 min on
# the idle machine. Quality: benchmarks/reference_quality.py.
REFERENCE_RUNS = {
    "quick": (ReferenceRun("ddim", seed=0, data="synthetic", kid_features="offline", epochs=40,
                           ema=0.99),
              ReferenceRun("ddpm", seed=0, data="synthetic", kid_features="offline", epochs=20,
                           ema=0.99)),
    # the DDPM profile's single epoch (255 steps) only demonstrates training; the Keras DDPM
    # example's pretrained weights had about 25,000 steps, as do 100 epochs here. Its KID
    # takes 50 sampling steps of the large network per image, so 8 batches (256 images) it is.
    "full": (ReferenceRun("ddim", seed=0, data="tfds", kid_features="inception"),
             ReferenceRun("ddpm", seed=0, data="tfds", kid_features="inception", epochs=100,
                          kid_batches=8)),
}


def reference_checkpoint(profile, model, root=DEFAULT_ROOT):
    """The folder of one reference checkpoint, e.g. data/checkpoints/quick/ddpm."""
    return Path(root) / profile / model


def regenerate(profile, root=DEFAULT_ROOT, data=None, kid_features=None, work_dir=None):
    """Trains every reference run of `profile` and writes its best checkpoint under `root`.

    `data` and `kid_features` replace the runs' own (e.g. real flowers for the quick profile).
    The training runs go to `work_dir`, where an interrupted regeneration resumes; without it,
    to a temporary folder that is deleted afterwards. Returns {model: manifest}.
    """
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="references-") as temporary:
            return regenerate(profile, root, data, kid_features, temporary)
    from diffusion_course.cli.train import DEFAULT_SAVE_EVERY, RunSettings, train
    from diffusion_course.model_card import write_model_card
    from diffusion_course.models import config_class

    manifests = {}
    for reference in REFERENCE_RUNS[profile]:
        epochs = reference.epochs or config_class(reference.model).from_profile(profile).num_epochs
        settings = RunSettings(
            model=reference.model, profile=profile, data=data or reference.data,
            seed=reference.seed, epochs=epochs, steps_per_epoch=None,
            kid_features=kid_features or reference.kid_features,
            kid_batches=reference.kid_batches,
            ema=reference.ema, jit_compile="auto", save_every=DEFAULT_SAVE_EVERY)
        best = train(settings, Path(work_dir) / profile / reference.model, resume=True)
        destination = reference_checkpoint(profile, reference.model, root)
        manifests[reference.model] = export_checkpoint(best, destination)
        write_model_card(destination)
        print(f"Reference {destination} written, with its model card.")
    return manifests


def export_checkpoint(source, destination):
    """Copies a checkpoint's networks to `destination`, atomically, with the same manifest extra."""
    from diffusion_course.checkpoints import save_checkpoint
    from diffusion_course.models import load_model, model_name_of
    from diffusion_course.training_fingerprint import training_fingerprint

    model, manifest = load_model(source)
    # the code that trained it, which tests/test_reference_fingerprint.py checks against today's
    extra = {**manifest["extra"], "made_by": "python -m diffusion_course references "
                                              f"--profile {manifest['profile']}",
             "training_code_sha256": training_fingerprint(model_name_of(model.config))}
    return save_checkpoint(destination, model.checkpoint_parts(), model.config, manifest["step"],
                           manifest["seed"], extra)
