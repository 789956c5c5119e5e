"""The instructor's reference solution of the DDIM assignment (never released to students).

There is one source of truth: the solution cells of the instructor notebook
`solutions/ddim/ddim.ipynb`. This module reads them, so the reference that grades students and
the solution that instructors read and edit cannot drift apart.
"""

import json
from pathlib import Path
from types import SimpleNamespace

from diffusion_course.ddim import DiffusionModel

SOLUTION_NOTEBOOK = Path(__file__).resolve().parents[1] / "solutions" / "ddim" / "ddim.ipynb"
FUNCTION_NAMES = ("diffusion_schedule", "denoise", "reverse_diffusion")
SETUP_CELL = "setup"


def notebook_cells(notebook_path=SOLUTION_NOTEBOOK):
    """{grade_id: source} of every nbgrader cell of a notebook."""
    notebook = json.loads(Path(notebook_path).read_text())
    cells = {}
    for cell in notebook["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id:
            source = cell["source"]
            cells[grade_id] = "".join(source) if isinstance(source, list) else source
    return cells


def _without_solution_markers(source):
    return "\n".join(line for line in source.splitlines()
                     if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))


def solution_sources(notebook_path=SOLUTION_NOTEBOOK):
    """{function name: source} of the three solution cells."""
    cells = notebook_cells(notebook_path)
    return {name: _without_solution_markers(cells[f"answer_{name}"]) for name in FUNCTION_NAMES}


def setup_source(notebook_path=SOLUTION_NOTEBOOK):
    """The imports cell that every answer cell may rely on."""
    return notebook_cells(notebook_path)[SETUP_CELL]


def define_functions(sources, preamble):
    """Executes each function's source after the preamble; returns {name: function}."""
    functions = {}
    for name, source in sources.items():
        namespace = {}
        exec(compile(preamble, "<setup>", "exec"), namespace)
        exec(compile(source, f"<{name}>", "exec"), namespace)
        functions[name] = namespace[name]
    return functions


REFERENCE_FUNCTIONS = define_functions(solution_sources(), setup_source())

ReferenceDiffusionModel = type(
    "ReferenceDiffusionModel", (DiffusionModel,),
    {**REFERENCE_FUNCTIONS, "__doc__": "DDIM with the solution notebook's three functions.",
     "__module__": __name__})


def reference_diffusion_schedule(diffusion_times, min_signal_rate, max_signal_rate):
    """The reference schedule as a plain function of the two bounds."""
    holder = SimpleNamespace(config=SimpleNamespace(min_signal_rate=min_signal_rate,
                                                    max_signal_rate=max_signal_rate))
    return REFERENCE_FUNCTIONS["diffusion_schedule"](holder, diffusion_times)
