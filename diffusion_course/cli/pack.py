"""`pack`: a profile's reference checkpoints as release archives, with their SHA256SUMS.

See `diffusion_course.reference_archives` for where they are published and how they come back.
"""

from pathlib import Path

from diffusion_course.references import DEFAULT_ROOT

EXAMPLES = """examples:
  python -m diffusion_course pack --profile full --out dist/
  gh release create references-full-v1 dist/*     # publish them (GitHub CLI)
"""


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "pack", help="pack a profile's reference checkpoints into release archives",
        description="Verify every reference checkpoint of a profile and write one tar per "
                    "reference plus SHA256SUMS to OUT, to be attached to a release. The same "
                    "checkpoints always give byte-identical archives.",
        epilog=EXAMPLES)
    parser.add_argument("--profile", required=True, choices=("full", "quick"))
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help=f"root of the reference checkpoints (default: {DEFAULT_ROOT})")
    parser.add_argument("--out", type=Path, required=True, help="folder for the archives")
    parser.set_defaults(run=run)
    return parser


def run(args):
    from diffusion_course.cli.common import UsageError
    from diffusion_course.reference_archives import SUMS_NAME, pack

    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file, not a folder: name a folder for the "
                         "archives (it is created if missing), such as --out dist/")
    sums = pack(args.profile, args.root, args.out)
    for name, digest in sums.items():
        size = (args.out / name).stat().st_size
        print(f"{args.out / name}: {size / 2**20:.1f} MiB, sha256 {digest}")
    print(f"{args.out / SUMS_NAME}: publish it next to the archives.")
