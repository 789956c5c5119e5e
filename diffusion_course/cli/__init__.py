"""The command line for teaching assistants: `python -m diffusion_course COMMAND ...`.

    train       train a model: progress bar, CSV log, sample grids, checkpoints,
                best-by-KID selection, exact --resume
    sample      a PNG grid or a GIF of the sampling process, from a checkpoint
    evaluate    the KID of a checkpoint against the validation images, or KID against network
                evaluations for several samplers (CSV and PNG)
    verify      check a checkpoint's manifest, sha256s and configuration
    card        a model card (README.md) beside a checkpoint, from its manifest
    references  regenerate every reference checkpoint of a profile, with fixed seeds
    design-grid train the prediction x loss-weighting grid of DDIM models, write its KIDs
    pack        a profile's references as release archives with SHA256SUMS
    install     a downloaded reference archive, checked against its sha256, into place

train, sample, evaluate, verify, card, design-grid, pack and install each live in a module of
their own with `add_parser` and `run`; references, a thin layer over `diffusion_course.references`,
is defined here. TensorFlow is imported only once a command runs, so `--help` is instant. Exit
codes: 0 success, 1 the command failed (the message says why and what to do), 2 bad arguments.
"""

import argparse
import errno
import sys
from pathlib import Path

from diffusion_course.cli import (
    card,
    design_grid,
    evaluate,
    install,
    pack,
    sample,
    train,
    verify,
)
from diffusion_course.cli.common import KID_FEATURES, CommandError, UsageError, data_source
from diffusion_course.quiet import quiet_tensorflow_startup

EXAMPLES = """examples:
  python -m diffusion_course train --model ddim --profile quick --data synthetic \\
      --kid-features offline --out runs/ddim-quick
  python -m diffusion_course verify runs/ddim-quick/best
  python -m diffusion_course sample runs/ddim-quick --out samples.png
  python -m diffusion_course evaluate runs/ddim-quick --kid-features offline
  python -m diffusion_course card runs/ddim-quick/best
  python -m diffusion_course references --profile quick

Run `python -m diffusion_course COMMAND --help` for a command's options.
"""

REFERENCES_EXAMPLES = """examples:
  python -m diffusion_course references --profile quick        # CPU, minutes; committed
  python -m diffusion_course references --profile full         # GPU, hours; published
  python -m diffusion_course references --profile full --work-dir runs/references   # resumable
"""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m diffusion_course",
        description="Train, sample, evaluate and verify the course's diffusion models.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (train, sample, evaluate, verify, card, design_grid, pack, install):
        command_parser = module.add_parser(subparsers)
        command_parser.formatter_class = argparse.RawDescriptionHelpFormatter
        command_parser.set_defaults(parser=command_parser)
    add_references_parser(subparsers)
    return parser


def add_references_parser(subparsers):
    from diffusion_course.references import DEFAULT_ROOT

    parser = subparsers.add_parser(
        "references", help="regenerate every reference checkpoint of a profile",
        description="Train the DDIM and DDPM reference runs of a profile with their fixed seeds "
                    "and write their best checkpoints to OUT/<profile>/<model>. The quick "
                    "profile trains on the synthetic images with the offline KID features.",
        epilog=REFERENCES_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", required=True, choices=("full", "quick"))
    parser.add_argument("--out", type=Path, default=DEFAULT_ROOT,
                        help=f"root of the reference checkpoints (default: {DEFAULT_ROOT})")
    parser.add_argument("--data", type=data_source,
                        help="replace the runs' data (quick: synthetic; full: tfds)")
    parser.add_argument("--kid-features", choices=KID_FEATURES,
                        help="replace the runs' KID features (quick: offline; full: inception)")
    parser.add_argument("--work-dir", type=Path,
                        help="keep the training runs here, and resume them if interrupted "
                             "(default: a temporary folder)")
    parser.set_defaults(run=run_references, parser=parser)


def run_references(args):
    from diffusion_course.references import regenerate

    regenerate(args.profile, args.out, args.data, args.kid_features, args.work_dir)


# a full disk, a read-only one, no permission: the machine's state, not a fault of the program
MACHINE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def expected_errors():
    """The errors that a command reports as a message (exit 1) rather than a traceback."""
    from diffusion_course.checkpoints import CheckpointError
    from diffusion_course.config import ConfigError
    from diffusion_course.data import DatasetError, DatasetUnavailableError
    from diffusion_course.models import UnknownModelError
    from diffusion_course.reference_archives import ArchiveError

    # FileExistsError: a checkpoint would replace a folder that is not one
    return (ArchiveError, CommandError, CheckpointError, ConfigError, DatasetError,
            DatasetUnavailableError, UnknownModelError, FileExistsError)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    for stream in (sys.stdout, sys.stderr):  # a file name need not be UTF-8
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    quiet_tensorflow_startup(probe_gpus=True)  # the first import prints start-up notices
    try:
        return args.run(args) or 0
    except UsageError as error:
        args.parser.error(str(error))  # prints the usage and exits with status 2
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    except Exception as error:
        if isinstance(error, OSError) and error.errno in MACHINE_ERRORS:
            print(f"error: cannot write {error.filename or 'a file'}: {error.strerror}. Free "
                  "some space, or write somewhere you may.", file=sys.stderr)
            return 1
        if not isinstance(error, expected_errors()):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
