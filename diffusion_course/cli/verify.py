"""`verify`: is a checkpoint folder complete, unmodified and consistent with its configuration?

It checks, in order: the manifest reads and is unmodified (its own sha256); every file has its
recorded sha256; the recorded configuration is a valid one of a course model (and, if asked, the
given model and profile); every network loads into a model built from that configuration, so the
weights' shapes match the architecture it describes; a recorded KID names its features. Any
failure prints what is wrong and exits with status 1. Like `sample` and `evaluate`, it takes a
training run's folder to mean its best checkpoint.
"""

import sys
from pathlib import Path

from diffusion_course.cli.common import add_checkpoint_argument, resolve_checkpoint
from diffusion_course.models import (
    MODEL_NAMES,
    UnknownModelError,
    build_model,
    config_class,
    config_from_manifest,
    model_name_of,
)

EXAMPLES = """examples:
  python -m diffusion_course verify data/checkpoints/quick/ddpm
  python -m diffusion_course verify data/checkpoints/full/ddim --model ddim --profile full
  python -m diffusion_course verify runs/ddim/last
"""


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "verify", help="check a checkpoint's manifest, sha256s and configuration",
        description="Check a checkpoint folder: manifest, sha256 of every file, configuration, "
                    "and that the weights fit it. Exits 0 when all is well, 1 with the reason "
                    "otherwise.",
        epilog=EXAMPLES)
    add_checkpoint_argument(parser)
    parser.add_argument("--model", choices=MODEL_NAMES, help="expect this model")
    parser.add_argument("--profile", choices=("full", "quick"),
                        help="expect this profile's architecture and noise schedule")
    parser.set_defaults(run=run)
    return parser


def run(args):
    from diffusion_course.checkpoints import CheckpointError
    from diffusion_course.config import ConfigError

    checkpoint = resolve_checkpoint(args.checkpoint)
    try:
        manifest = verify(checkpoint, args.model, args.profile)
    except (CheckpointError, ConfigError, UnknownModelError) as error:
        print(f"verify FAILED for {checkpoint}:\n{error}", file=sys.stderr)
        return 1
    print(describe(checkpoint, manifest))
    return 0


def verify(checkpoint, model_name=None, profile=None):
    """Returns the manifest, or raises the first problem found."""
    from diffusion_course.checkpoints import (
        CheckpointMismatchError,
        load_checkpoint,
        verify_checkpoint,
    )
    from diffusion_course.training_state import TRAINING_STATE_PART

    manifest = verify_checkpoint(checkpoint)
    config = config_from_manifest(manifest)
    found_model = model_name_of(config)
    if model_name is not None and model_name != found_model:
        raise CheckpointMismatchError(f"It holds a {found_model} model, not {model_name}.")
    expected_config = config if profile is None else config_class(found_model).from_profile(profile)

    model = build_model(found_model, config)
    parts = model.checkpoint_parts()
    # a run's last/ also holds the optimizer and RNG state, checked by its sha256 only
    saved = set(manifest["networks"]) - {TRAINING_STATE_PART}
    if saved != set(parts):
        raise CheckpointMismatchError(
            f"It holds the parts {sorted(saved)}, but a {found_model} model has {sorted(parts)}.")
    load_checkpoint(checkpoint, parts, expected_config)

    kid = manifest["extra"].get("kid")
    if kid is not None and not (isinstance(kid, dict) and isinstance(kid.get("features"), str)
                                and isinstance(kid.get("value"), (int, float))):
        raise CheckpointMismatchError(
            f"It records the KID {kid!r}, which is not a value with the features it was "
            "measured with; such a value cannot be compared with any other. Re-measure it "
            "with evaluate.")
    return manifest


def describe(checkpoint, manifest):
    extra = manifest["extra"]
    lines = [f"OK: {Path(checkpoint)}",
             f"  {manifest['config_class']} (profile {manifest['profile']}), step "
             f"{manifest['step']}, seed {manifest['seed']}"]
    lines += [f"  {entry['file']}: {entry['size_bytes'] / 1024:.1f} KiB, sha256 "
              f"{entry['sha256'][:16]}... matches" for entry in manifest["networks"].values()]
    if extra.get("kid"):
        lines.append(f"  KID {extra['kid']['value']:.4g} (features: {extra['kid']['features']})")
    if extra.get("data"):
        lines.append(f"  data: {extra['data']}")
    return "\n".join(lines)
