"""The library modules that an answer may not use: they would do the assignment for it.

The library has its own cosine schedule and DDIM sampler, and the whole design space around
them: the model that uses them, the multistep weights, the sampler comparison
and the design grid, each of which imports the first ones. The graded run of the answer cells
cannot import any of them (the sandbox masks these files) and the judge names such an import in
the verdict, with the rule, so that the student knows why the function failed.
"""

import ast
import re
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[2] / "diffusion_course"
FORBIDDEN_MODULES = ("schedules", "parametrizations", "continuous_samplers", "multistep_weights",
                     "configurable_ddim", "sampler_comparison", "design_grid")
RULE = "the assignment's functions must be your own code"
_MENTION = re.compile(r"diffusion_course\W+(" + "|".join(FORBIDDEN_MODULES) + r")\b")


def forbidden_paths():
    """The files to mask in the sandbox: each module's source and any compiled copy of it, in
    every copy of the library that the sandbox shows."""
    from autograder.sandbox.plan import library_paths

    paths = []
    for library in library_paths():
        for module in FORBIDDEN_MODULES:
            paths.append(library / f"{module}.py")
            paths.extend(sorted((library / "__pycache__").glob(f"{module}.*.pyc")))
    return [path for path in paths if path.exists()]


def forbidden_imports(source):
    """The forbidden modules that `source` imports or names (e.g. in importlib), sorted."""
    found = {f"diffusion_course.{name}" for name in _MENTION.findall(source)}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return sorted(found)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "diffusion_course":
            found.update(f"diffusion_course.{alias.name}" for alias in node.names
                         if alias.name in FORBIDDEN_MODULES)
    return sorted(found)
