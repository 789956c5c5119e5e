"""The names a notebook cell binds and reads, from its syntax: which of the release's cells a
student's cells need (the runner runs those; the grading kernel skips the others).

Light on purpose: nbgrader's configuration imports it, and must not start TensorFlow.
"""

import ast

from autograder.runner.ipython_cells import transform


def cell_names(source):
    """(names a cell binds, names it reads), from its syntax; nothing for a cell that does not
    compile (it will raise when it runs, and be noted then). The code that a magic runs
    (`%time x = config.min_signal_rate`, a `%%timeit` cell) counts as the cell's own."""
    try:
        tree = ast.parse(transform(source))
    except SyntaxError:
        return set(), set()
    return _tree_names(tree)


def _tree_names(tree):
    bound, read = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif (magic_code := _magic_code(node)) is not None:
            magic_bound, magic_read = _tree_names(magic_code)
            bound |= magic_bound
            read |= magic_read
    return bound, read


def _magic_code(node):
    """The parsed code of `get_ipython().run_line_magic(name, code)` or `.run_cell_magic(name,
    line, code)`, as IPython's transformer writes a magic; None for any other node, or a
    magic whose text is not Python (`%matplotlib inline` is, harmlessly)."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("run_line_magic", "run_cell_magic") and node.args
            and isinstance(node.args[-1], ast.Constant) and isinstance(node.args[-1].value, str)):
        return None
    try:
        return ast.parse(transform(node.args[-1].value))
    except SyntaxError:
        return None
