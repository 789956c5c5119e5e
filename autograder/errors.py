"""The one error type that says: the grader failed, not the student."""


class GraderError(RuntimeError):
    """A fault of the grader or of the machine, never a verdict on the student's code.

    Examples: the sandbox could not be set up, the runner was killed or starved before or
    without any sign of the student's code being at fault, the solution's run failed, the cache
    could not be read or written. The grading run reports it as FAILED (grader error) with this
    reason and grades the student again once.
    """
