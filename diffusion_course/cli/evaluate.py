"""`evaluate`: the KID of a checkpoint against the validation images, with its features named.

With the defaults it measures exactly what training measured after each epoch (the same
validation batches, sampler, steps and noise), so it reproduces the KID in the manifest.
"""


from diffusion_course.cli.common import (
    KID_FEATURES,
    SAMPLER_NAMES,
    add_checkpoint_argument,
    add_kid_arguments,
    data_source,
    describe_source,
    image_generator,
    make_kid,
    positive_int,
    preview_steps,
    resolve_checkpoint,
    sampling_plan,
    seed_int,
    validation_batches,
)
from diffusion_course.models import config_from_manifest, load_model, model_name_of
from diffusion_course.runtime import seed_everything

EXAMPLES = """examples:
  python -m diffusion_course evaluate runs/ddim --data tfds
  python -m diffusion_course evaluate data/checkpoints/quick/ddpm --kid-features offline
  python -m diffusion_course evaluate runs/ddpm/best --sampler ddim --steps 100 --kid-batches 4
"""


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "evaluate", help="measure a checkpoint's KID against the validation images",
        description="Generate as many images as there are validation images and measure the "
                    "Kernel Inception Distance between them. The output names the features "
                    "used: values from different features cannot be compared.",
        epilog=EXAMPLES)
    add_checkpoint_argument(parser)
    parser.add_argument("--data", type=data_source,
                        help="tfds, folder:PATH or synthetic (default: the data the checkpoint "
                             "was trained on, else tfds)")
    add_kid_arguments(parser, default="the features the checkpoint's KID was measured with, "
                                      "else inception")
    parser.add_argument("--steps", type=positive_int,
                        help="sampling steps (default: the profile's kid_diffusion_steps for "
                             "DDIM; 50 for DDPM)")
    parser.add_argument("--sampler", choices=SAMPLER_NAMES,
                        help="ddim or ddpm (DDPM checkpoints only; every timestep) "
                             "(default: ddim)")
    parser.add_argument("--seed", type=seed_int, default=0,
                        help="seed of the generated images' noise (default: 0)")
    parser.set_defaults(run=run)
    return parser


def recorded_run(manifest):
    """The `train` settings that a checkpoint records, or {} for one written otherwise."""
    run_settings = manifest["extra"].get("run")
    return run_settings if isinstance(run_settings, dict) else {}


def recorded_kid_features(manifest):
    """"offline" or "inception": the features of the checkpoint's own KID, so that the
    default measurement is comparable with it."""
    if recorded_run(manifest).get("kid_features") in KID_FEATURES:
        return recorded_run(manifest)["kid_features"]
    kid = manifest["extra"].get("kid")
    features = kid.get("features") if isinstance(kid, dict) else None
    return "offline" if str(features).startswith("offline") else "inception"


def run(args):
    from diffusion_course.checkpoints import read_manifest
    from diffusion_course.data import load_splits
    from diffusion_course.training import KIDCallback

    checkpoint = resolve_checkpoint(args.checkpoint)
    manifest = read_manifest(checkpoint)
    config = config_from_manifest(manifest)
    sampler, steps = sampling_plan(config, args.sampler, args.steps, default_sampler="ddim",
                                   default_steps=preview_steps(config)[0])
    source = args.data or recorded_run(manifest).get("data", "tfds")
    kid = make_kid(args.kid_features or recorded_kid_features(manifest), config.image_size)
    # the run's seed shuffled its validation images: the same seed gives the same batches
    run_seed = manifest["seed"] or 0
    seed_everything(run_seed)
    _, validation = load_splits(model_name_of(config), source, config, run_seed)
    batches = validation_batches(validation, args.kid_batches)
    model, _ = load_model(checkpoint)
    kid_callback = KIDCallback(batches, kid, steps, seed=args.seed, verbose=False)
    kid_callback.set_model(image_generator(model, sampler))
    value = kid_callback.measure()
    num_images = sum(len(batch) for batch in batches)
    print(f"{kid.describe(value)}\n"
          f"  value: {value!r}\n"
          f"  features: {kid.feature_name}\n"
          f"  {num_images} generated vs {num_images} validation images "
          f"({describe_source(source)}), {sampler} sampler, {steps} steps, noise seed "
          f"{args.seed}\n"
          f"  checkpoint: {checkpoint} (step {manifest['step']})")
