"""The instructor's reference solution of the DDIM assignment (never released to students).

There is one source of truth: the solution cells of the instructor notebook
`solutions/ddim/ddim.ipynb`. `solution_cells.py` reads them and this module builds the reference
from them, so the reference that grades students and the solution that instructors read and edit
cannot drift apart.
"""

from types import SimpleNamespace

from autograder.solution_cells import (  # noqa: F401 (the reference's sources, re-exported)
    FUNCTION_NAMES,
    SETUP_CELL,
    SOLUTION_NOTEBOOK,
    notebook_cells,
    setup_source,
    solution_sources,
)
from diffusion_course.ddim import DiffusionModel


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
