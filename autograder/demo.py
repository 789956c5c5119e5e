"""`python -m autograder.demo`: the old name of `python -m autograder demo`, kept for one
release."""

import sys

from autograder.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
