"""`python -m autograder.grade_student`: the old name of
`python -m autograder.grading.grade_student` (one student's grading, one batch-system task), kept
for one release."""

import sys

from autograder.grading.grade_student import main

if __name__ == "__main__":
    sys.exit(main())
