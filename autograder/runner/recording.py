"""How the runner turns a student's cells into functions, and their results into data.

A student's code is data here: a cell that raises is recorded with the line where it raised,
and a function's return value is recorded as arrays with their dtypes. Nothing is judged.
"""

import linecache
import traceback

import keras
import numpy as np

from autograder.runner.stand_ins import to_numpy

STUDENT_FILE_PREFIX = "<your "


def describe_value(value, store):
    """A returned value as JSON: a tensor as an array with its dtype, a tuple item by item."""
    if isinstance(value, (tuple, list)):
        return {"kind": type(value).__name__,
                "items": [describe_value(item, store) for item in value]}
    if value is None or not hasattr(value, "shape"):
        return {"kind": type(value).__name__}
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


def compile_cell(source, filename):
    """Compiles a cell as IPython does: its source goes into linecache, so that tracebacks show
    its lines and AutoGraph can read it when it converts the function for tf.function."""
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    return compile(source, filename, "exec")


def record_call(record, store, function, *args, **kwargs):
    """Calls `function` and records what it returned, or the error it raised."""
    try:
        returned = function(*args, **kwargs)
    except (Exception, SystemExit) as error:  # sys.exit() in a function is that function's error
        record["error"] = describe_error(error)
        return
    record["returned"] = describe_value(returned, store)


def define_function(preamble, name, program, on_student_code):
    """Runs the setup cell, then the function's program, in a fresh namespace.

    `program` is the function's cells in notebook order: [{"label", "source", "own"}], the
    student's own extra cells ("own": false) and the answer cell ("own": true). An extra cell
    that raises is noted and skipped, as the notebook would go on after it. Returns
    (function, error, notes); error is None when the function is defined.
    """
    namespace = {"__name__": "student"}
    try:
        exec(compile_cell(preamble, "<setup cell>"), namespace)
    except Exception as error:
        return None, {"type": "SetupError", "message": f"the setup cell failed in the grader: "
                                                       f"{type(error).__name__}: {error}"}, []
    notes, own_error = [], None
    for cell in program:
        on_student_code()
        try:
            exec(compile_cell(cell["source"], f"{STUDENT_FILE_PREFIX}{cell['label']}>"),
                 namespace)
        except (Exception, SystemExit) as error:
            if cell["own"]:
                own_error = describe_error(error)
            else:
                notes.append({"label": cell["label"], "error": describe_error(error)})
    if own_error is not None:
        return None, own_error, notes
    if not callable(namespace.get(name)):
        return None, {"type": "NameError",
                      "message": f"the cell does not define a function named {name}"}, notes
    return namespace[name], None, notes
