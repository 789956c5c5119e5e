"""`evaluate`: the KID of a checkpoint against the validation images, with its features named;
or, for several samplers or numbers of steps, KID against network evaluations (CSV and PNG).

With the defaults it measures exactly what training measured after each epoch (the same
validation batches, sampler, steps and noise), so it reproduces the KID in the manifest.
Given several `--sampler`s or `--steps 2,4,8,...` it draws the extended DDIM codebase's chart:
one line per sampler, every point measured on the same validation batches and initial noises.
"""

import argparse
from pathlib import Path

from diffusion_course.cli.common import (
    KID_FEATURES,
    UsageError,
    add_checkpoint_argument,
    add_kid_arguments,
    data_source,
    describe_source,
    make_kid,
    preview_steps,
    resolve_checkpoint,
    sampling_plan,
    seed_int,
    validation_batches,
)
from diffusion_course.config import (
    CONTINUOUS_SAMPLER_NAMES,
    MAX_DIFFUSION_STEPS,
    MAX_MULTISTEP_ORDER,
)
from diffusion_course.models import config_from_manifest, load_model, model_name_of
from diffusion_course.runtime import seed_everything

# the continuous samplers, and the DDPM model's own ancestral sampler
EVALUATE_SAMPLERS = (*CONTINUOUS_SAMPLER_NAMES, "ddpm")
# the samplers that a DDPM checkpoint's discrete model runs: DDIM with η over a strided subset of
# its timesteps (η = 1 for ddpm-vp), and all of them
DISCRETE_SAMPLERS = ("ddim", "ddpm-vp", "ddpm")
# the option that gives each sampler its parameter, with its default
SAMPLER_PARAMETERS = {"ddim": ("eta", (0.0,)), "second-order": ("alpha", (1.0,)),
                      "multistep": ("order", (2,))}
DEFAULT_CHART = Path("kid_vs_nfe.csv")

EXAMPLES = """examples:
  python -m diffusion_course evaluate runs/ddim --data tfds
  python -m diffusion_course evaluate data/checkpoints/quick/ddpm --kid-features offline
  python -m diffusion_course evaluate runs/ddpm/best --sampler ddim --steps 100 --kid-batches 4
  python -m diffusion_course evaluate data/checkpoints/quick/ddim --steps 2,4,8,16,32,64 \\
      --sampler ddim --sampler ddpm-vp --sampler ddpm-large --sampler second-order \\
      --alpha 0.5 --sampler multistep --order 1,2,3,4 --out kid_vs_nfe.csv
"""


def number_list(parse_one, what):
    """argparse type: a comma-separated list of values that `parse_one` accepts."""

    def parse(text):
        try:
            values = tuple(parse_one(item) for item in text.split(","))
        except ValueError:
            values = ()
        if not values:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return values

    return parse


def checked(convert, low, high, low_open=False):
    def parse_one(text):
        value = convert(text)
        if value > high or value < low or (low_open and value == low):
            raise ValueError(text)
        return value

    return parse_one


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "evaluate", help="measure a checkpoint's KID, or KID against network evaluations",
        description="Generate as many images as there are validation images and measure the "
                    "Kernel Inception Distance between them. The output names the features "
                    "used: values from different features cannot be compared. With several "
                    "samplers or numbers of steps, write KID against network evaluations as a "
                    "CSV table and a PNG chart, one line per sampler.",
        epilog=EXAMPLES)
    add_checkpoint_argument(parser)
    parser.add_argument("--data", type=data_source,
                        help="tfds, tfds:NAME, folder:PATH or synthetic (default: the data the "
                             "checkpoint was trained on, else tfds)")
    add_kid_arguments(parser, default="the features the checkpoint's KID was measured with, "
                                      "else inception")
    parser.add_argument("--steps", type=number_list(checked(int, 1, MAX_DIFFUSION_STEPS),
                                                    f"integers from 1 to {MAX_DIFFUSION_STEPS}"),
                        help="sampling steps, or a comma-separated list of them (default: the "
                             "profile's kid_diffusion_steps for DDIM; 50 for DDPM)")
    parser.add_argument("--sampler", action="append", choices=EVALUATE_SAMPLERS,
                        help="repeat it for several lines. DDIM checkpoints: ddim (with --eta), "
                             "ddpm-vp and ddpm-large (η = 1, DDIM eq. 16's two variances), "
                             "second-order (with --alpha; 2 network evaluations per step), "
                             "multistep (with --order). DDPM checkpoints: ddim (with --eta), "
                             "ddpm-vp, and ddpm (every timestep) (default: ddim)")
    parser.add_argument("--eta", type=number_list(checked(float, 0.0, 1.0),
                                                  "numbers in [0, 1]"),
                        help="η of the ddim sampler, or a list: one line each (default: 0)")
    parser.add_argument("--alpha", type=number_list(checked(float, 0.0, 1.0, low_open=True),
                                                    "numbers in (0, 1]"),
                        help="α of the second-order sampler (0.5 midpoint, 1 Heun), or a list "
                             "(default: 1)")
    parser.add_argument("--order", type=number_list(checked(int, 1, MAX_MULTISTEP_ORDER),
                                                    f"integers from 1 to {MAX_MULTISTEP_ORDER}"),
                        help="order of the multistep sampler, or a list (default: 2; order "
                             f"{MAX_MULTISTEP_ORDER + 1} is not offered, see config.py)")
    parser.add_argument("--out", type=Path,
                        help="write KID against network evaluations to this CSV file, and its "
                             "chart beside it as PNG (default with several samplers or steps: "
                             f"{DEFAULT_CHART})")
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


def sampler_lines(args, config):
    """[(label, step counts, make_generator(model))]: one chart line per sampler and parameter,
    or a UsageError for a choice this model cannot run."""
    names = list(dict.fromkeys(args.sampler or ["ddim"]))
    for name, (option, _) in SAMPLER_PARAMETERS.items():
        if getattr(args, option) is not None and name not in names:
            raise UsageError(f"--{option} applies to --sampler {name}, which was not chosen.")
    default_steps = preview_steps(config)[0]
    if model_name_of(config) == "ddpm":
        return discrete_sampler_lines(names, args, config, default_steps)
    if "ddpm" in names:
        sampling_plan(config, "ddpm", None, "ddim", default_steps)  # the message says why not
    from diffusion_course.sampler_comparison import SampledImages, SamplerChoice

    step_counts = args.steps or (default_steps,)
    lines = []
    for name in names:
        option, defaults = SAMPLER_PARAMETERS.get(name, (None, (None,)))
        for value in (getattr(args, option) or defaults) if option else defaults:
            choice = SamplerChoice(name, **({option: value} if option else {}))
            lines.append((choice.label, step_counts,
                          lambda model, choice=choice: SampledImages(model, choice)))
    return lines


def discrete_sampler_lines(names, args, config, default_steps):
    from diffusion_course.cli.common import DDPMImages

    unavailable = [name for name in names if name not in DISCRETE_SAMPLERS]
    if unavailable:
        raise UsageError(f"--sampler {', '.join(unavailable)}: a DDPM checkpoint samples with "
                         f"{', '.join(DISCRETE_SAMPLERS)}; the others need the continuous-time "
                         "DDIM model.")
    lines = []
    for name in names:
        if name == "ddpm":  # every timestep: beside other samplers, whatever --steps says
            for steps in args.steps if names == ["ddpm"] and args.steps else ():
                sampling_plan(config, "ddpm", steps, "ddpm", default_steps)  # steps = T only
            lines.append(("ddpm", (config.timesteps,), lambda model: DDPMImages(model, "ddpm")))
            continue
        step_counts = tuple(sampling_plan(config, "ddim", steps, "ddim", default_steps)[1]
                            for steps in args.steps or (None,))
        for eta in (1.0,) if name == "ddpm-vp" else args.eta or (0.0,):
            label = name if name == "ddpm-vp" else "ddim" if eta == 0.0 else f"ddim η={eta:g}"
            lines.append((label, step_counts,
                          lambda model, eta=eta: DDPMImages(model, "ddim", eta=eta)))
    return lines


def run(args):
    from diffusion_course.checkpoints import read_manifest
    from diffusion_course.data import load_splits

    checkpoint = resolve_checkpoint(args.checkpoint)
    manifest = read_manifest(checkpoint)
    config = config_from_manifest(manifest)
    lines = sampler_lines(args, config)
    chart = args.out is not None or len(lines) > 1 or len(lines[0][1]) > 1
    if chart and (args.out or DEFAULT_CHART).suffix != ".csv":
        raise UsageError(f"--out {args.out}: the table is a CSV file; give a name ending in "
                         ".csv (the chart is written beside it, as .png).")
    source = args.data or recorded_run(manifest).get("data", "tfds")
    kid = make_kid(args.kid_features or recorded_kid_features(manifest), config.image_size)
    # the run's seed shuffled its validation images: the same seed gives the same batches
    run_seed = manifest["seed"] or 0
    seed_everything(run_seed)
    _, validation = load_splits(model_name_of(config), source, config, run_seed)
    batches = validation_batches(validation, args.kid_batches)
    model, _ = load_model(checkpoint)
    num_images = sum(len(batch) for batch in batches)
    measured = (f"{num_images} generated vs {num_images} validation images "
                f"({describe_source(source)}), noise seed {args.seed}\n"
                f"  checkpoint: {checkpoint} (step {manifest['step']})")
    if chart:
        write_chart(lines, model, batches, kid, args.seed, args.out or DEFAULT_CHART, measured)
    else:
        measure_once(lines[0], model, batches, kid, args.seed, measured)


def measure_once(line, model, batches, kid, seed, measured):
    from diffusion_course.sampler_comparison import kid_against_evaluations

    label, (steps,), make_generator = line
    (row,) = kid_against_evaluations({label: make_generator(model)}, [steps], batches, kid, seed)
    print(f"{kid.describe(row['kid'])}\n"
          f"  value: {row['kid']!r}\n"
          f"  features: {kid.feature_name}\n"
          f"  {label} sampler, {steps} steps ({row['network_evaluations']} network "
          f"evaluations), {measured}")


def write_chart(lines, model, batches, kid, seed, out, measured):
    from diffusion_course.plotting import plot_kid_vs_evaluations
    from diffusion_course.sampler_comparison import kid_against_evaluations, rows_table, write_rows

    def report(row):
        print(f"{row['sampler']}, {row['diffusion_steps']} steps "
              f"({row['network_evaluations']} network evaluations): KID {row['kid']:.4g}",
              flush=True)

    rows = []
    for label, step_counts, make_generator in lines:
        rows += kid_against_evaluations({label: make_generator(model)}, step_counts, batches,
                                        kid, seed, report)
    write_rows(rows, out)
    chart = out.with_suffix(".png")
    plot_kid_vs_evaluations(rows, path=chart)
    print(f"\n{rows_table(rows)}\n\nKID features: {kid.feature_name}; {measured}\n"
          f"Written: {out} and {chart}")
