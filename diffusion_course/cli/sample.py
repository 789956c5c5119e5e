"""`sample`: a PNG grid of generated images, or a GIF of the sampling process, from a checkpoint."""

import math
from pathlib import Path

import numpy as np

from diffusion_course.cli.common import (
    UsageError,
    add_checkpoint_argument,
    image_generator,
    positive_int,
    preview_steps,
    resolve_checkpoint,
    sampling_plan,
    seed_int,
)
from diffusion_course.models import config_from_manifest, load_model, model_name_of

# --sampler: DDIM (any checkpoint), or the DDPM model's ancestral sampler
SAMPLERS = ("ddim", "ddpm")
GIF_FRAMES = 40  # at most: the recorded steps are thinned out evenly beyond this
FINAL_FRAME_REPEATS = 10  # the result stays on screen for this many frames before the loop

EXAMPLES = """examples:
  python -m diffusion_course sample data/checkpoints/quick/ddim --out ddim.png
  python -m diffusion_course sample runs/ddpm --out process.gif --sampler ddim --steps 50
  python -m diffusion_course sample data/checkpoints/quick/ddpm --out ddpm.png --sampler ddpm \\
      --batch 36 --seed 7
"""


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "sample", help="write a grid (PNG) or the sampling process (GIF) from a checkpoint",
        description="Generate images from a checkpoint's EMA network. A .png output is a grid "
                    "of the final images; a .gif shows the noisy images step by step, ending "
                    "on the final ones. Small images are enlarged to at least 128 pixels, "
                    "with white gaps between them.",
        epilog=EXAMPLES)
    add_checkpoint_argument(parser)
    parser.add_argument("--out", required=True, type=Path,
                        help="the file to write: .png (grid) or .gif (process)")
    parser.add_argument("--batch", type=positive_int, default=16,
                        help="number of images (default: 16)")
    parser.add_argument("--steps", type=positive_int,
                        help="sampling steps (default: the profile's plot_diffusion_steps for "
                             "DDIM checkpoints; 50 for the ddim sampler of DDPM checkpoints)")
    parser.add_argument("--sampler", choices=SAMPLERS,
                        help="ddim (deterministic, any number of steps) or ddpm (ancestral, "
                             "every timestep; DDPM checkpoints only) (default: ddim for DDIM "
                             "checkpoints, ddpm for DDPM ones)")
    parser.add_argument("--seed", type=seed_int, default=0,
                        help="seed of the initial noise and of the sampler (default: 0)")
    parser.set_defaults(run=run)
    return parser


def run(args):
    from diffusion_course.checkpoints import read_manifest
    from diffusion_course.plotting import enlargement, save_image_grid, write_gif

    if args.out.suffix.lower() not in (".png", ".gif"):
        raise UsageError(f"--out {args.out}: the file must end in .png (a grid of the images) "
                         "or .gif (the sampling process).")
    if args.out.is_dir():
        raise UsageError(f"--out {args.out} is a folder; give the file to write, e.g. "
                         f"{args.out / ('samples' + args.out.suffix.lower())}.")
    blocking = next((folder for folder in args.out.parents if folder.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise UsageError(f"--out {args.out}: {blocking} is a file, not a folder.")
    checkpoint = resolve_checkpoint(args.checkpoint)
    config = config_from_manifest(read_manifest(checkpoint))
    sampler, steps = sampling_plan(config, args.sampler, args.steps, default_sampler="ddpm",
                                   default_steps=preview_steps(config)[1])
    model, manifest = load_model(checkpoint, seed=args.seed)
    generator = image_generator(model, sampler)
    readable = dict(scale=enlargement(config.image_size), gap=4)  # large, with white gaps
    if args.out.suffix.lower() == ".png":
        save_image_grid(generator.generate(args.batch, steps, seed=args.seed), args.out,
                        **readable)
    else:
        record = ddim_process if model_name_of(config) == "ddim" else ddpm_process
        frames, images = record(generator, args.batch, steps, args.seed)
        write_gif([*frames, *[images] * FINAL_FRAME_REPEATS], args.out, **readable)
    print(f"Wrote {args.out}: {args.batch} images, {sampler} sampler, {steps} steps, seed "
          f"{args.seed}, from {checkpoint} (step {manifest['step']}).")


def ddim_process(model, num_images, steps, seed):
    """(noisy images before every step, final images) of the DDIM model, in [0, 1]: the
    deterministic DDIM sampler that `model.generate` runs, with its trajectory recorded."""
    initial_noise = model.initial_noise(num_images, None, seed)
    images, trajectory = model.sampler("ddim", steps).sample(
        model.ema_network, initial_noise, seed=seed, return_trajectory=True,
        record_every=math.ceil(steps / GIF_FRAMES))
    frames = [np.asarray(model.denormalize(noisy_images))
              for noisy_images in trajectory.noisy_images]
    return frames, np.asarray(model.denormalize(images))


def ddpm_process(generator, num_images, steps, seed):
    """(noisy images x_t at up to GIF_FRAMES steps, final images) of the DDPM model, in [0, 1]."""
    from diffusion_course.data import to_unit_range
    from diffusion_course.samplers import initial_noise

    noise = initial_noise(num_images, generator.config.image_size, seed)
    images, trajectory = generator.sampler(steps).sample(
        generator.model.ema_network, noise, seed=seed, return_trajectory=True,
        record_every=math.ceil(steps / GIF_FRAMES))
    frames = [to_unit_range(noisy_images) for noisy_images in trajectory.noisy_images]
    return frames, to_unit_range(images)
