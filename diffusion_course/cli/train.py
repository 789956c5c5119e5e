"""`train`: a deterministic, resumable training run that records what it did.

A run lives in one folder:

    OUT/
        last/         the latest checkpoint, with the optimizer and RNG state (--resume starts here)
        best/         the networks of the epoch with the lowest validation KID
        log.csv       one row per epoch: mean losses, KID and its features, wall time
        samples/      a grid of generated images after every epoch, from the same noise each time
        data-files.json   the sha256 of every image of a folder:PATH run's data
        .lock         held by the run that uses the folder (see run_folder.py)

Resuming is exact. The training data is one endless stream shuffled by the seed, so a resumed
run skips the batches already consumed; the networks, the optimizer's moments and the model's
random state come from `last/`. A run killed at any moment loses only the steps since `last/`
was saved, and a save never breaks the previous checkpoint (`save_checkpoint` swaps folders).
`last/`'s manifest holds the whole history, so a resume rewrites log.csv from it.

A resume must continue the same run: the settings and, for a folder of images, the data's
fingerprint are checked against `last/` before any data is loaded.
"""

import dataclasses
import json
from pathlib import Path

from diffusion_course.cli.common import (
    SWITCH_CHOICES,
    CommandError,
    UsageError,
    add_kid_arguments,
    data_fingerprint,
    data_source,
    decay,
    describe_source,
    image_generator,
    make_kid,
    positive_int,
    preview_steps,
    seed_int,
    validation_batches,
)
from diffusion_course.models import MODEL_NAMES, build_model, config_class
from diffusion_course.runtime import configure_cpu_threads, make_deterministic, seed_everything

DEFAULT_SAVE_EVERY = 250  # steps between the checkpoints taken inside an epoch
DATA_FILES_NAME = "data-files.json"

EXAMPLES = """examples:
  python -m diffusion_course train --model ddim --profile full --data tfds --out runs/ddim
  python -m diffusion_course train --model ddpm --profile quick --data synthetic \\
      --kid-features offline --out runs/ddpm-quick --seed 1
  python -m diffusion_course train --model ddim --data tfds:cifar10 --schedule log-snr-linear \\
      --prediction velocity --loss-weighting velocity --loss mse --out runs/cifar-v
  python -m diffusion_course train --out runs/ddim --resume              # after an interruption
  python -m diffusion_course train --out runs/ddim --resume --epochs 80  # train for longer
"""


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything that decides a run's weights, plus when it saves. Stored in every manifest."""

    model: str
    profile: str
    data: str
    seed: int
    epochs: int
    steps_per_epoch: int
    kid_features: str
    kid_batches: int | None
    ema: float | None  # None: the profile's
    jit_compile: str
    save_every: int
    # with defaults, last: runs saved before they existed resume with them
    mixed_precision: str = "auto"
    # the DDIM design space (config.py); None: the configuration's default
    schedule: str | None = None
    start_log_snr: float | None = None
    end_log_snr: float | None = None
    prediction: str | None = None
    loss_weighting: str | None = None
    loss: str | None = None


# the settings that become DDIM configuration fields of the same name
DESIGN_SPACE = ("schedule", "start_log_snr", "end_log_snr", "prediction", "loss_weighting",
                "loss")
# a resumed run takes these from its checkpoint; only the epochs and save interval may change
FIXED_ON_RESUME = ("model", "profile", "data", "seed", "steps_per_epoch", "kid_features",
                   "kid_batches", "ema", "jit_compile", "mixed_precision", *DESIGN_SPACE)


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train", help="train a model, with checkpoints, logs and sample grids",
        description="Train the DDIM or DDPM model. Checkpoints go to OUT/last (for --resume) "
                    "and OUT/best (lowest validation KID); log.csv and samples/ record the "
                    "run. Two runs with the same seed on the same machine give identical "
                    "weights, and so does a run killed and resumed.",
        epilog=EXAMPLES)
    parser.add_argument("--model", choices=MODEL_NAMES,
                        help="ddim (the assignment's model) or ddpm (the lab's); required unless "
                             "--resume")
    parser.add_argument("--profile", choices=("full", "quick"),
                        help="configuration profile (default: full with a GPU, else quick)")
    parser.add_argument("--data", type=data_source,
                        help="tfds (Oxford Flowers), tfds:NAME (oxford_flowers102, "
                             "caltech_birds2011, celeb_a, cifar10), folder:PATH or synthetic "
                             "(default: tfds)")
    parser.add_argument("--out", required=True, type=Path, help="the run's folder")
    parser.add_argument("--seed", type=seed_int, help="random seed (default: 0)")
    parser.add_argument("--epochs", type=positive_int,
                        help="number of epochs in all (default: the profile's num_epochs)")
    parser.add_argument("--steps-per-epoch", type=positive_int,
                        help="training steps per epoch (default: one pass over the data)")
    parser.add_argument("--save-every", type=positive_int,
                        help="steps between checkpoints within an epoch; one is also saved at "
                             f"every epoch's end (default: {DEFAULT_SAVE_EVERY})")
    add_kid_arguments(parser)
    parser.add_argument("--ema", type=decay,
                        help="decay of the EMA network's average (default: the profile's: "
                             "0.999 for full, an average over about 1000 steps; 0.99 for quick, "
                             "whose runs are a few hundred steps)")
    parser.add_argument("--jit-compile", choices=tuple(SWITCH_CHOICES),
                        help="XLA compilation of the train step (default: auto: on a GPU, and "
                             "under JAX)")
    parser.add_argument("--mixed-precision", choices=tuple(SWITCH_CHOICES),
                        help="float16 compute in the networks, float32 weights and loss, with "
                             "loss scaling (default: auto: on a GPU only)")
    add_design_space_arguments(parser)
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in OUT from its last checkpoint, with its "
                             "settings")
    parser.set_defaults(run=run)
    return parser


def add_design_space_arguments(parser):
    """The DDIM model's schedule, parametrization and loss (the extended DDIM codebase)."""
    from diffusion_course.config import LOSS_WEIGHTINGS, LOSSES, PREDICTIONS, SCHEDULE_NAMES

    group = parser.add_argument_group(
        "DDIM design space", "DDIM only; each defaults to the assignment's choice, and the "
                             "manifest records it")
    group.add_argument("--schedule", choices=SCHEDULE_NAMES,
                       help="noise schedule (default: assignment-cosine, between the profile's "
                            "signal rates); the others run between two log-SNRs")
    group.add_argument("--start-log-snr", type=float, metavar="LOG_SNR",
                       help="log signal-to-noise ratio at t = 0 (default: 2.5)")
    group.add_argument("--end-log-snr", type=float, metavar="LOG_SNR",
                       help="log signal-to-noise ratio at t = 1 (default: -7.5)")
    group.add_argument("--prediction", choices=PREDICTIONS,
                       help="what the network predicts (default: noise)")
    group.add_argument("--loss-weighting", choices=LOSS_WEIGHTINGS,
                       help="whose error training minimises, whatever the network predicts "
                            "(default: noise)")
    group.add_argument("--loss", choices=LOSSES, help="loss function (default: mae)")


def run(args):
    from diffusion_course.cli.run_folder import held_run_folder

    with held_run_folder(args.out):  # before reading the run: another may be saving it
        settings, resuming = settings_from(args)
        train_in_held_folder(settings, Path(args.out), resuming)


def settings_from(args):
    """The run's settings: on --resume the checkpoint's, else the arguments with defaults."""
    given = {name: getattr(args, name) for name in FIXED_ON_RESUME + ("epochs", "save_every")
             if getattr(args, name) is not None}
    saved = saved_run(args.out)
    if saved is not None:
        if not args.resume:
            raise UsageError(f"{args.out} already holds a training run (step {saved['step']}). "
                             "Pass --resume to continue it, or choose another --out.")
        return RunSettings(**{**recorded_settings(saved, args.out), **given}), True
    if args.resume:
        print(f"{args.out} holds no checkpoint yet: starting from step 0.")
    if args.model is None:
        raise UsageError("--model is required (ddim or ddpm) to start a new run.")
    design_options = [name for name in DESIGN_SPACE if name in given]
    if args.model != "ddim" and design_options:
        raise UsageError(
            f"{', '.join('--' + name.replace('_', '-') for name in design_options)}: the "
            "schedule, prediction and loss options apply to --model ddim; the DDPM model has "
            "the lab's fixed linear betas and noise prediction.")
    if args.profile is None:
        from diffusion_course.config import default_profile

        given["profile"] = default_profile()
    defaults = dict(
        data="tfds", seed=0, steps_per_epoch=None, kid_features="inception", kid_batches=None,
        ema=None, jit_compile="auto", mixed_precision="auto", save_every=DEFAULT_SAVE_EVERY,
        epochs=config_class(args.model).from_profile(given["profile"]).num_epochs)
    return RunSettings(**{**defaults, **given}), False


def saved_run(out):
    """The manifest of the run's last checkpoint, or None when it has none yet.

    `read_manifest` also finds a checkpoint that a save, killed mid-swap, left renamed aside.
    """
    from diffusion_course.checkpoints import CheckpointNotFoundError, read_manifest

    try:
        return read_manifest(Path(out) / "last")
    except CheckpointNotFoundError:
        return None


def recorded_settings(saved, out):
    """The `RunSettings` fields that `last/`'s manifest records, or a clear error."""
    recorded = saved["extra"].get("run")
    fields = dataclasses.fields(RunSettings)
    required = {field.name for field in fields if field.default is dataclasses.MISSING}
    if not isinstance(recorded, dict) or not required <= set(recorded) <= {
            field.name for field in fields}:
        raise CommandError(
            f"{Path(out) / 'last'} holds a checkpoint that `train` did not write (its manifest "
            "records no run settings), so there is no run to resume. Choose another --out.")
    return recorded


def train(settings, out, resume=False):
    """Trains (or, with `resume`, continues) the run in `out`; returns the best checkpoint's path.

    `settings.steps_per_epoch` may be None: one pass over the training data. The run holds
    `out` (see `run_folder.held_run_folder`) until it returns.
    """
    from diffusion_course.cli.run_folder import held_run_folder

    with held_run_folder(out):
        return train_in_held_folder(settings, Path(out), resume)


def train_in_held_folder(settings, out, resume):
    """`train`, once the run folder `out` is checked and held."""
    from diffusion_course.checkpoints import load_checkpoint
    from diffusion_course.cli.training_run import Progress, TrainingRun, write_csv
    from diffusion_course.data import TooFewImagesError, image_size_for, load_splits
    from diffusion_course.devices import resolve_jit_compile, resolve_mixed_precision
    from diffusion_course.training import KIDCallback, SampleGridCallback
    from diffusion_course.training_state import TRAINING_STATE_PART, TrainingState

    threads_per_op = configure_cpu_threads(settings.profile)  # before any TensorFlow op
    seed_everything(settings.seed)
    overrides = {"jit_compile": SWITCH_CHOICES[settings.jit_compile],
                 "mixed_precision": SWITCH_CHOICES[settings.mixed_precision],
                 "num_epochs": settings.epochs}
    for name in ("ema", *DESIGN_SPACE):
        if getattr(settings, name) is not None:
            overrides[name] = getattr(settings, name)
    profile_image_size = config_class(settings.model).from_profile(settings.profile).image_size
    overrides["image_size"] = image_size_for(settings.data, profile_image_size)
    config = config_class(settings.model).from_profile(settings.profile, **overrides)
    # a resume on other settings or data, missing KID weights or data fail here, before
    # anything is trained
    saved = saved_run(out) if resume else None
    if saved is not None:
        recorded = recorded_settings(saved, out)
        settings = dataclasses.replace(
            settings, steps_per_epoch=settings.steps_per_epoch or recorded.get("steps_per_epoch"))
        check_same_run(settings, recorded, out)
    fingerprint = data_fingerprint(settings.data)
    if saved is not None:
        check_same_data(fingerprint, saved["extra"].get("data_fingerprint"), out)
    kid = make_kid(settings.kid_features, config.image_size)
    try:
        train_images, validation_images = load_splits(settings.model, settings.data, config,
                                                      settings.seed)
    except TooFewImagesError as error:
        smaller_batches = "" if settings.profile == "quick" else ", or --profile quick " \
            f"(batches of {config_class(settings.model).from_profile('quick').batch_size})"
        raise CommandError(
            f"The {error.what} has {error.num_images} images, fewer than one batch of the "
            f"{settings.profile} profile ({error.batch_size}). A folder's validation part is a "
            f"fifth of its images, so give a folder of at least {5 * error.batch_size} images"
            f"{smaller_batches}, or train on --data synthetic.") from None
    settings = dataclasses.replace(
        settings, steps_per_epoch=settings.steps_per_epoch or number_of_batches(train_images))

    make_deterministic(settings.seed)
    model = build_model(settings.model, config, seed=settings.seed)
    model.compile()
    training_parts = {**model.checkpoint_parts(), TRAINING_STATE_PART: TrainingState(model)}
    if saved is not None:
        progress = Progress.from_manifest(load_checkpoint(out / "last", training_parts, config))
        print(f"Resuming {out} at step {progress.step}.")
        write_csv(out / "log.csv", progress.history)  # a kill may have come before its update
    else:
        progress = Progress()
        write_data_files(fingerprint, out)
        if settings.model == "ddim":
            model.adapt_normalizer(train_images)

    def training_stream(step):
        """The batches from `step` on: a fresh copy of the pipeline, whose shuffle order
        depends only on the seed and the batches drawn before, skips the first `step`."""
        fresh_train_images, _ = load_splits(settings.model, settings.data, config, settings.seed)
        return fresh_train_images.repeat().skip(step)

    kid_steps, grid_steps = preview_steps(config)
    generator = image_generator(model)
    kid_callback = KIDCallback(validation_batches(validation_images, settings.kid_batches), kid,
                               kid_steps)
    # one batch's worth of images: the DDPM sampler then compiles once for the grid and KID
    grid_callback = SampleGridCallback(num_images=config.batch_size, diffusion_steps=grid_steps,
                                       directory=out / "samples", num_cols=None)
    for callback in (kid_callback, grid_callback):
        callback.set_model(generator)
    run_record = {"run": dataclasses.asdict(settings), "data": describe_source(settings.data),
                  "data_fingerprint": fingerprint and fingerprint.summary(),
                  "kid_features": kid.feature_name, "threads_per_op": threads_per_op or "default",
                  "xla": resolve_jit_compile(config.jit_compile),
                  "mixed_precision": resolve_mixed_precision(config.mixed_precision)}
    run = TrainingRun(out, settings, config, progress, training_parts, kid_callback,
                      grid_callback, run_record)

    design = (f" Schedule {config.schedule}, predicting {config.prediction}, {config.loss} of "
              f"the {config.loss_weighting}." if settings.model == "ddim" else "")
    print(f"Training {settings.model} ({settings.profile} profile) on "
          f"{describe_source(settings.data)}, seed {settings.seed}: {settings.epochs} epoch(s) "
          f"of {settings.steps_per_epoch} steps.{design} KID features: {kid.feature_name}. XLA "
          f"{'on' if run_record['xla'] else 'off'}, mixed precision "
          f"{'on' if run_record['mixed_precision'] else 'off'}.")
    run.fit_all(model, training_stream)
    best = out / "best"
    print(f"Done: {progress.step} steps, {run.wall_time()} s of training in all. Best "
          f"KID {progress.best_kid():.4g} (features: {kid.feature_name}) in {best}")
    return best


def check_same_run(settings, saved, out):
    """A resumed run must be the run that was saved: only the epochs and saves may change."""
    # a run saved before a setting existed ran with that setting's default
    saved = {**{field.name: field.default for field in dataclasses.fields(RunSettings)
                if field.default is not dataclasses.MISSING}, **saved}
    conflicts = [f"{name} {getattr(settings, name)!r} (the run has {saved[name]!r})"
                 for name in FIXED_ON_RESUME if getattr(settings, name) != saved[name]]
    if conflicts:
        raise UsageError(f"Resuming {out} continues that run with its own settings, but "
                         f"{', '.join(conflicts)} differ. Leave them out, or choose another "
                         "output folder.")


def check_same_data(fingerprint, recorded, out):
    """A resumed run must train on the data it started with; the difference is named."""
    if recorded is None or fingerprint is None or fingerprint.summary() == recorded:
        return
    listed = out / DATA_FILES_NAME
    try:
        difference = fingerprint.difference(json.loads(listed.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        difference = (f"it had {recorded['images']} images ({recorded['bytes']} bytes), it now "
                      f"has {fingerprint.summary()['images']} "
                      f"({fingerprint.summary()['bytes']} bytes)")
    raise CommandError(
        f"The data of {out} has changed since the run started: {difference}. Resuming would "
        "train on other images than the run so far. Restore the data, or start a new run in "
        "another --out.")


def write_data_files(fingerprint, out):
    """Every image's sha256, so that a resume on changed data can name the files that changed."""
    if fingerprint is not None:
        (out / DATA_FILES_NAME).write_text(json.dumps(fingerprint.files, indent=1) + "\n",
                                           encoding="utf-8")


def number_of_batches(dataset):
    batches = int(dataset.cardinality())
    if batches < 1:
        raise UsageError("The training data yields no complete batch per pass, or its length is "
                         "unknown; give --steps-per-epoch.")
    return batches
