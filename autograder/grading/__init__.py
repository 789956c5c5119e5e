"""A grading run and what it writes: the commands, one student's grading, the grade table, the
gradebook and the feedback.
"""
