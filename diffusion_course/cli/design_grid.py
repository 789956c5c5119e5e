"""`design-grid`: train the prediction x loss-weighting grid of DDIM models, write its KIDs."""

from pathlib import Path

from diffusion_course.cli.common import positive_int

EXAMPLES = """examples:
  python -m diffusion_course design-grid --profile quick          # CPU, a few minutes; committed
  python -m diffusion_course design-grid --profile quick --predictions noise,velocity \\
      --loss-weightings velocity --epochs 2 --out grid.csv
"""


def names(choices):
    """argparse type: a comma-separated subset of `choices`."""
    import argparse

    def parse(text):
        chosen = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in chosen if name not in choices]
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(
                f"{text!r}: give a comma-separated list of {', '.join(choices)}")
        return tuple(chosen)

    return parse


def add_parser(subparsers):
    from diffusion_course.config import LOSS_WEIGHTINGS, PREDICTIONS

    parser = subparsers.add_parser(
        "design-grid", help="train the prediction x loss-weighting grid and write its KIDs",
        description="Train one DDIM model per pair of prediction (noise, image, velocity) and "
                    "loss weighting (noise, image, velocity), with the profile's grid settings "
                    "(diffusion_course/design_grid.py), and write the best KID of each to a CSV "
                    "table (default: data/checkpoints/<profile>/prediction_x_loss_weighting.csv"
                    "), which the design-space lab shows.",
        epilog=EXAMPLES)
    parser.add_argument("--profile", required=True, choices=("full", "quick"))
    parser.add_argument("--out", type=Path, help="the CSV table to write")
    parser.add_argument("--predictions", type=names(PREDICTIONS), default=PREDICTIONS,
                        help="the predictions to train (default: all three)")
    parser.add_argument("--loss-weightings", type=names(LOSS_WEIGHTINGS),
                        default=LOSS_WEIGHTINGS,
                        help="the loss weightings to train (default: all three)")
    parser.add_argument("--epochs", type=positive_int,
                        help="epochs per run (default: the profile's grid setting)")
    parser.add_argument("--steps-per-epoch", type=positive_int,
                        help="training steps per epoch (default: one pass over the data)")
    parser.add_argument("--work-dir", type=Path,
                        help="keep the training runs here, and resume them if interrupted "
                             "(default: a temporary folder)")
    parser.set_defaults(run=run)
    return parser


def run(args):
    from diffusion_course.design_grid import grid_file, grid_table, train_grid

    out = args.out or grid_file(args.profile)
    rows = train_grid(args.profile, out, args.predictions, args.loss_weightings, args.epochs,
                      args.steps_per_epoch, args.work_dir)
    print(f"{grid_table(rows)}\n\nKID features: {rows[0]['kid_features']}. Written: {out}")
