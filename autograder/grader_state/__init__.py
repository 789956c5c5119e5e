"""What the grader trusts: the training-run evaluation and the cache of its measurements.

Nothing here runs student code. The student runner's weights come in as arrays, are loaded
into the solution model here and measured here; the solution and untrained measurements are
cached in a folder that only the grading user can read or write.
"""
