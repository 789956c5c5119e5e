"""Which library modules a file imports, found by reading its code (nothing is run).

A student part must not need the design space: a lab or a student module that imports
`diffusion_course.schedules` would fail on a student's machine. An import inside a `try` that
catches ImportError is a guarded one (the library says there what is missing) and is allowed.
"""

import ast

from autograder.bundle.parts import LIBRARY, is_design_space_module

IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


def _guarded_lines(tree):
    """Line numbers of the statements inside a `try` whose handler catches ImportError."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(handler.type, ast.Name) and handler.type.id in IMPORT_ERRORS
                for handler in node.handlers):
            for statement in node.body:
                lines.update(range(statement.lineno, statement.end_lineno + 1))
    return lines


def library_imports(source):
    """[(line, "diffusion_course.x.y"), ...]: the unguarded imports of library modules; for
    `from diffusion_course import a`, "diffusion_course.a" (a module or a name of the package)."""
    tree = ast.parse(source)
    guarded = _guarded_lines(tree)
    found = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in guarded:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names
                      if alias.name.split(".")[0] == LIBRARY]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == LIBRARY:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def design_space_imports(source):
    """[(line, module)] of the unguarded imports that reach into the design space."""
    return [(line, module) for line, module in library_imports(source)
            if is_design_space_module(module)]
