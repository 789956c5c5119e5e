"""`python -m autograder bundle`: build what students receive.

    python -m autograder bundle [--variant NAME] [--out dist/student] [--force]
    python -m autograder bundle --part design-space [--out dist/design-space]   # after the deadline
"""

import sys
from pathlib import Path

from autograder.bundle import variant
from autograder.bundle.build import BundleError, build_bundle, check_out
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
    parser.add_argument("--variant",
                        help="this term's assignment variant (default: the course's, "
                             "diffusion_course/course_variant.py); the student bundle and "
                             "grading follow it. Variants: see diffusion_course/variants.py")


def run(args):
    part = PARTS[args.part]
    out = args.out or REPO_ROOT / "dist" / part.name
    try:
        name = variant.chosen_variant(args.variant)
        if not part.design_space:
            check_out(Path(out).absolute(), args.force)
            print(f"Checking that the solution of the variant {name!r} passes its hidden tests "
                  f"(a minute the first time; cached afterwards)...")
            variant.check_solution(name)
        built = build_bundle(part, out, force=args.force, variant_name=name)
    except (BundleError, WheelBuildError, variant.VariantError) as error:
        print(f"bundle: {error}", file=sys.stderr)
        return 2
    if not part.design_space and variant.record(name):
        print(f"This term's variant is now {name!r} ({variant.SETTING}): grading follows it.")
    files = sorted(path.relative_to(built).as_posix() for path in built.rglob("*")
                   if path.is_file())
    print(f"The {part.name} bundle is in {built} ({len(files)} files):")
    print("\n".join(f"  {name}" for name in files))
    if not part.design_space:
        print("No solution function found in it (the no-answers check). Hand the folder to the "
              "students; its README.md says what to do.")
    return 0
