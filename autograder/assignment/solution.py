"""The instructor's solution of the DDIM assignment (never released to students).

There is one source of truth: the solution cells of the instructor notebook
`solutions/ddim/ddim.ipynb`. `solution_cells.py` reads them and this module builds the solution
from them, so the solution that grades students and the solution that instructors read and edit
cannot drift apart. A variant replaces the functions it changes (`variant_solutions.py`); the
solution follows the variant that a configuration has (its schedule and prediction).
"""

from functools import cache
from types import SimpleNamespace

from autograder.assignment.solution_cells import (  # noqa: F401 (the solution's sources, re-exported)
    FUNCTION_NAMES,
    SETUP_CELL,
    SOLUTION_NOTEBOOK,
    SOLUTION_SOURCE_FILES,
    notebook_cells,
    setup_source,
    solution_sources,
)
from autograder.assignment.variant_solutions import (  # noqa: F401 (re-exported)
    config_variant_name,
    solution_sources_for,
    variant_solution_sources,
)
from diffusion_course.ddim import DiffusionModel
from diffusion_course.variants import DEFAULT_VARIANT


def define_functions(sources, preamble):
    """Executes each function's source after the preamble; returns {name: function}."""
    functions = {}
    for name, source in sources.items():
        namespace = {}
        exec(compile(preamble, "<setup>", "exec"), namespace)
        exec(compile(source, f"<{name}>", "exec"), namespace)
        functions[name] = namespace[name]
    return functions


@cache
def variant_functions(variant_name):
    """{name: function} of a variant's solution."""
    return define_functions(variant_solution_sources(variant_name), setup_source())


def solution_functions(config):
    """{name: function} of the solution of the variant that `config` has."""
    return variant_functions(config_variant_name(config))


SOLUTION_FUNCTIONS = variant_functions(DEFAULT_VARIANT)


def _follows_the_variant(name):
    def method(self, *args, **kwargs):
        return solution_functions(self.config)[name](self, *args, **kwargs)
    method.__name__ = name
    return method


SolutionDiffusionModel = type(
    "SolutionDiffusionModel", (DiffusionModel,),
    {**{name: _follows_the_variant(name) for name in FUNCTION_NAMES},
     "__doc__": "DDIM with the solution's three functions, those of its config's variant.",
     "__module__": __name__})


def solution_diffusion_schedule(diffusion_times, min_signal_rate, max_signal_rate):
    """The default variant's solution schedule as a plain function of the two bounds."""
    holder = SimpleNamespace(config=SimpleNamespace(min_signal_rate=min_signal_rate,
                                                    max_signal_rate=max_signal_rate))
    return SOLUTION_FUNCTIONS["diffusion_schedule"](holder, diffusion_times)
