"""The instructor's solution of the DDIM assignment (never released to students).

There is one source of truth: the solution cells of the instructor notebook
`solutions/ddim/ddim.ipynb`. `solution_cells.py` reads them and this module builds the solution
from them, so the solution that grades students and the solution that instructors read and edit
cannot drift apart. A variant replaces the functions it changes (`variant_solutions.py`); the
solution follows the variant that a configuration has (its schedule and prediction).
"""

from functools import cache
from pathlib import Path
from types import SimpleNamespace

from autograder.assignment import variant_solutions
from autograder.assignment.solution_cells import (  # noqa: F401 (the solution's sources, re-exported)
    FUNCTION_NAMES,
    SETUP_CELL,
    SOLUTION_NOTEBOOK,
    notebook_cells,
    setup_source,
    solution_sources,
)
from autograder.assignment.variant_solutions import variant_solution_sources
from diffusion_course.ddim import DiffusionModel
from diffusion_course.variants import DEFAULT_VARIANT, variant_of

# what the solution depends on besides the notebook (a grader cache's code hash includes it)
SOLUTION_SOURCE_FILES = (SOLUTION_NOTEBOOK, Path(variant_solutions.__file__))


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


def solution_sources_for(config):
    """{name: source} of the solution of the variant that `config` has."""
    return variant_solution_sources(_variant_name(config))


def solution_functions(config):
    """{name: function} of the solution of the variant that `config` has."""
    return variant_functions(_variant_name(config))


def _variant_name(config):
    found = variant_of(config)
    if found is None:
        raise ValueError(f"no variant of the assignment has schedule={config.schedule!r} with "
                         f"prediction={config.prediction!r}: see diffusion_course/variants.py")
    return found.name


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
