"""nbgrader's plug-ins: how it reads a notebook, which cells the grading kernel runs, and the
judge's verdicts in the graded cells.
"""
