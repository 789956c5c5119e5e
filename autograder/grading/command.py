"""`python -m autograder grade`: grade a class's submissions into a course folder.

    python -m autograder grade --submissions DIR --out COURSE [--jobs N] [--regrade | --force]

DIR holds one subfolder of notebooks per student; COURSE is the course folder that gets the
release, the graded notebooks, the gradebook, the grade table, the feedback and the reports.
`python -m autograder demo` is the same run on the kit's sample submissions.
"""

import argparse

HELP = "grade a class's submissions (one subfolder per student) into a course folder"


def add_arguments(parser, submissions=None, out=None):
    """The grading run's options; `submissions` and `out` are required unless given defaults."""
    parser.add_argument("--submissions", required=submissions is None, default=submissions,
                        help="a folder with one subfolder of notebooks per student")
    parser.add_argument("--out", required=out is None, default=out,
                        help="the course folder (created; a rerun resumes it)")
    parser.add_argument("--jobs", type=int, default=1, help="students graded in parallel")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--regrade", action="store_true",
                       help="grade every student again (default: only those without a result)")
    again.add_argument("--force", action="store_true",
                       help="delete the graded class in --out and start over")


def run(arguments, parser=None):
    if arguments.jobs < 1:
        message = f"--jobs must be at least 1, got {arguments.jobs}"
        if parser is not None:
            parser.error(message)
        raise SystemExit(f"error: {message}")
    from autograder.grading import demo  # the grading run itself; heavy imports stay out of --help

    return demo.run(arguments)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder grade", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv), parser)
