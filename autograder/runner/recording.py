"""How the runner turns what a student's functions return or raise into data.

A student's code is data here: a cell that raises is recorded with the line where it raised,
and a function's return value is recorded as arrays with their dtypes. Nothing is judged.
"""

import traceback

import numpy as np

STUDENT_FILE_PREFIX = "<your "


def describe_value(value, store):
    """A returned value as JSON: a tensor as an array with its dtype, a tuple item by item."""
    if isinstance(value, (tuple, list)):
        return {"kind": type(value).__name__,
                "items": [describe_value(item, store) for item in value]}
    if value is None or not hasattr(value, "shape"):
        return {"kind": type(value).__name__}
    import keras  # here, not above: the judge reads this module's names and runs no Keras

    from autograder.runner.stand_ins import to_numpy

    try:
        array = to_numpy(value)
    except Exception as error:  # a symbolic or exotic object: say what it was
        return {"kind": type(value).__name__, "unreadable": f"{type(error).__name__}: {error}"}
    dtype = keras.backend.standardize_dtype(getattr(value, "dtype", array.dtype))
    if array.dtype.kind not in "biuf":
        return {"kind": type(value).__name__, "dtype": dtype, "shape": list(array.shape)}
    return {"kind": "tensor", "dtype": dtype, "shape": list(array.shape),
            "value": store.add(array.astype(np.float64) if array.dtype.kind == "f"
                               else array.astype(np.int64))}


def describe_error(error):
    """Type, message, and the line of the student's cell where it was raised (if any)."""
    record = {"type": type(error).__name__, "message": str(error)[:2000]}
    if isinstance(error, SyntaxError) and str(error.filename).startswith(STUDENT_FILE_PREFIX):
        record["where"] = f"line {error.lineno} of {error.filename[1:-1]}: " + (
            error.text or "").strip()
        return record
    student_frames = [frame for frame in traceback.extract_tb(error.__traceback__)
                      if frame.filename.startswith(STUDENT_FILE_PREFIX)]
    if student_frames:
        frame = student_frames[-1]
        record["where"] = f"line {frame.lineno} of {frame.filename[1:-1]}: {frame.line}"
    return record


def record_call(record, store, function, *args, **kwargs):
    """Calls `function` and records what it returned, or the error it raised."""
    try:
        returned = function(*args, **kwargs)
    except (Exception, SystemExit) as error:  # sys.exit() in a function is that function's error
        record["error"] = describe_error(error)
        return
    record["returned"] = describe_value(returned, store)
