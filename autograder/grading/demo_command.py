"""`python -m autograder demo`: the kit's sample class graded end to end, as a real class is.

    python -m autograder demo [--jobs N] [--submissions DIR] [--out DIR] [--regrade | --force]

The same run as `python -m autograder grade` (autograder/grading/demo.py), with the sample
submissions (autograder/samples/submissions/) and outputs/autograde-demo/ as its defaults.
"""

from pathlib import Path

from autograder.grading import command

HELP = "grade the kit's sample submissions end to end (the same run as grade)"
REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_SUBMISSIONS = REPO_ROOT / "autograder" / "samples" / "submissions"
DEFAULT_OUT = REPO_ROOT / "outputs" / "autograde-demo"


def add_arguments(parser):
    command.add_arguments(parser, submissions=str(SAMPLE_SUBMISSIONS), out=str(DEFAULT_OUT))


def run(arguments, parser=None):
    return command.run(arguments, parser)
