"""The instructor side of the course: the reference, the hidden tests and their sandbox."""

VERDICTS_FILE = "autograder_verdicts.json"  # the judge's verdicts, beside each graded notebook
