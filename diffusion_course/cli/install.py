"""`install`: a downloaded reference archive, checked against its published sha256, into place.

See `diffusion_course.reference_archives`. Nothing is replaced unless the archive's sha256, its
contents and its checkpoint all check out.
"""

from pathlib import Path

from diffusion_course.references import DEFAULT_ROOT

EXAMPLES = """examples:
  python -m diffusion_course install ddim-full.tar --sums SHA256SUMS
  python -m diffusion_course install ddpm-full.tar --sha256 4f1c...e9   # the published hash
"""


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "install", help="install a downloaded reference archive after checking its sha256",
        description="Check a reference archive against its published sha256, unpack it, "
                    "verify the checkpoint as `verify` does, and put it at "
                    "ROOT/<profile>/<model>. A failed check leaves ROOT as it was.",
        epilog=EXAMPLES)
    parser.add_argument("archive", type=Path, help="the downloaded archive, e.g. ddim-full.tar")
    published = parser.add_mutually_exclusive_group(required=True)
    published.add_argument("--sums", type=Path,
                           help="the release's SHA256SUMS file, which lists the archive")
    published.add_argument("--sha256", help="the archive's published sha256")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help=f"root of the reference checkpoints (default: {DEFAULT_ROOT})")
    parser.set_defaults(run=run)
    return parser


def run(args):
    from diffusion_course.reference_archives import install

    destination, manifest = install(args.archive, args.sums, args.sha256, args.root)
    kid = (manifest.get("extra") or {}).get("kid") or {}
    print(f"Installed {destination} ({manifest['config_class']}, profile "
          f"{manifest['profile']}, step {manifest['step']}"
          + (f", KID {kid['value']:.4g}, features: {kid['features']}" if kid else "") + ").")
