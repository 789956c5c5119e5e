"""The solution notebook's cells, read as text: no TensorFlow, no Keras.

`solutions/ddim/ddim.ipynb` is the one source of truth of the answers. `solution.py` turns
these sources into the solution model; the student bundle's no-answers check
(`bundle/no_answers.py`) compares code with them, and must stay fast.
"""

import json
from pathlib import Path

from autograder import FUNCTION_NAMES

SOLUTION_NOTEBOOK = Path(__file__).resolve().parents[2] / "solutions" / "ddim" / "ddim.ipynb"
SETUP_CELL = "setup"
# what the solution depends on besides the library (a grader cache's code hash includes it)
SOLUTION_SOURCE_FILES = (SOLUTION_NOTEBOOK, Path(__file__).with_name("variant_solutions.py"))


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
