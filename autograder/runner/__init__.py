"""What runs student code: the student runner (inside the sandbox) and how it is launched.

Only this folder, the package marker and the library are visible to a runner: nothing here may
import the reference, the verdicts or the grader's state.
"""
