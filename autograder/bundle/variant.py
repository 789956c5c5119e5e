"""The bundle's assignment variant: checked, written into the wheel, recorded for grading.

`python -m autograder bundle --variant NAME` refuses an unknown name (listing the variants) and
a variant whose own solution fails its hidden tests (showing the failing verdicts). The wheel's
`diffusion_course/course_variant.py` names the variant, so the students' notebook and
self-checks follow it; once the bundle is built, the repository's copy of that file is rewritten
too, so that grading follows the same variant.
"""

from pathlib import Path

from autograder.bundle.parts import LIBRARY, REPO_ROOT

SETTING = f"{LIBRARY}/course_variant.py"
SETTING_TEMPLATE = (
    '"""This term\'s assignment variant: the one setting that the notebook, its self-checks and '
    'the\ngrader follow (see variants.py for the variants). `python -m autograder bundle '
    '--variant NAME`\nrewrites this file."""\n\nCOURSE_VARIANT = {name!r}\n')


class VariantError(Exception):
    """The variant cannot be bundled; the message says why and what to do."""


def chosen_variant(name):
    """The variant's name (the course's when None); VariantError lists the valid ones."""
    from diffusion_course.variants import UnknownVariant, variant

    try:
        return variant(name).name
    except UnknownVariant as error:
        raise VariantError(str(error)) from None


def check_solution(name, cache_dir=None):
    """Grades the variant's own solution with its hidden tests; VariantError with the failing
    verdicts unless every test passes."""
    from autograder.assignment.solution import setup_source
    from autograder.assignment.variant_solutions import variant_solution_sources
    from autograder.judge import grade
    from diffusion_course.variants import assignment_config

    verdicts = grade(variant_solution_sources(name), setup_source(),
                     config=assignment_config("quick", name), cache_dir=cache_dir)
    failed = {cell: verdict for cell, verdict in verdicts.items() if not verdict.passed}
    if failed:
        raise VariantError(
            f"the variant {name!r} fails its own hidden tests, so no student could pass them:\n"
            + "\n".join(f"  {cell}: {verdict.message}" for cell, verdict in failed.items())
            + "\nFix its solution (autograder/assignment/variant_solutions.py) or pick another"
            " variant.")


def write_setting(name, folder):
    """Writes the setting file naming `name` into `folder`; returns its path."""
    path = Path(folder) / SETTING
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SETTING_TEMPLATE.format(name=name))
    return path


def record(name, repo_root=REPO_ROOT):
    """Makes `name` the course's variant in the repository; whether that changed it."""
    path = Path(repo_root) / SETTING
    if path.read_text() == SETTING_TEMPLATE.format(name=name):
        return False
    write_setting(name, repo_root)
    return True
