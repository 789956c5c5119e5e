"""`card`: a Hugging Face style model card (README.md) beside a checkpoint, from its manifest."""

from diffusion_course.cli.common import add_checkpoint_argument, resolve_checkpoint

EXAMPLES = """examples:
  python -m diffusion_course card data/checkpoints/quick/ddim
  python -m diffusion_course card runs/ddim          # a run's best checkpoint
"""


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "card", help="write a model card (README.md) beside a checkpoint",
        description="Write README.md into the checkpoint folder: YAML front matter, the model's "
                    "description, intended uses, training data, training procedure (steps, "
                    "wall time), the measured KID with its feature extractor, and the table of "
                    "hyperparameters, all from manifest.json.",
        epilog=EXAMPLES)
    add_checkpoint_argument(parser)
    parser.set_defaults(run=run)
    return parser


def run(args):
    from diffusion_course.checkpoints import verify_checkpoint
    from diffusion_course.model_card import write_model_card

    checkpoint = resolve_checkpoint(args.checkpoint)
    verify_checkpoint(checkpoint)  # a card describes a checkpoint that is whole
    print(f"Model card written: {write_model_card(checkpoint)}")
