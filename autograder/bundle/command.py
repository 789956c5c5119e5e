"""`python -m autograder bundle`: build what students receive.

    python -m autograder bundle [--out dist/student] [--force]
    python -m autograder bundle --part design-space [--out dist/design-space]   # after the deadline
"""

import sys
from pathlib import Path

from autograder.bundle.build import BundleError, build_bundle
from autograder.bundle.parts import PARTS, REPO_ROOT
from autograder.bundle.wheel import WheelBuildError

HELP = "build the student bundle (the course without the answers), or the design space's"


def add_arguments(parser):
    parser.add_argument("--part", choices=list(PARTS), default="student",
                        help="student: labs 01-02, the released assignment and the library's "
                             "student part (default); design-space: lab 03 and the library's "
                             "design space, to release after the deadline")
    parser.add_argument("--out", type=Path,
                        help="the bundle's folder (default: dist/student or dist/design-space)")
    parser.add_argument("--force", action="store_true",
                        help="replace the contents of a non-empty --out")


def run(args):
    part = PARTS[args.part]
    out = args.out or REPO_ROOT / "dist" / part.name
    try:
        built = build_bundle(part, out, force=args.force)
    except (BundleError, WheelBuildError) as error:
        print(f"bundle: {error}", file=sys.stderr)
        return 2
    files = sorted(path.relative_to(built).as_posix() for path in built.rglob("*")
                   if path.is_file())
    print(f"The {part.name} bundle is in {built} ({len(files)} files):")
    print("\n".join(f"  {name}" for name in files))
    if not part.design_space:
        print("No solution function found in it (the no-answers check). Hand the folder to the "
              "students; its README.md says what to do.")
    return 0
