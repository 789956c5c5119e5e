"""The process that runs a submission's functions for the judge: the student runner (which the
sandbox confines) and how the judge launches it and reads its answers.

Only this folder, the package marker and the library are visible to a runner: nothing here may
import the solution, the verdicts or the grader's state.
"""
