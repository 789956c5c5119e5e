"""This term's assignment variant: the one setting that the notebook, its self-checks and the
grader follow (see variants.py for the variants). `python -m autograder bundle --variant NAME`
rewrites this file."""

COURSE_VARIANT = 'cosine-noise'
