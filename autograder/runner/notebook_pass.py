"""How the runner turns a submission's cells into its functions: once, in notebook order.

In the kernel, a cell sees every name that the cells above it defined: the release's own cells
(`config`, `SEED`, `train_dataset`, `kid`, ...) as well as the student's. So the runner runs
the submission's cells as the notebook did, each once, in one namespace:
- the release's locked code cells (`"release": true`), in grading mode (the runner has
  NBGRADER_EXECUTION set, as the grading kernel has: quick profile, synthetic flowers, offline
  KID features), but only those that define a name some student cell reads, and the release
  cells those need in turn: most submissions read none of them, and pay nothing for them;
- the student's extra cells and answer cells, through IPython's input transformer
  (`ipython_cells.py`): magics and shell escapes mean in the grader what they safely can.
A function is taken from the namespace once the last cell of its program has run (its test
cell came next in the notebook). An extra cell that raises is noted and skipped, as the notebook
went on after it; an answer cell that raises is its function's error.

A cell comes from `submission.function_programs` as {"label", "source", "own", "index"
(its place in the notebook), "release"}. Cells without an "index" (a plain answer source, or the
solution's answer that replaces a failed function in a training run) run as before: after the
preamble, in a namespace of their own.
"""

import json

from autograder.runner.cell_names import cell_names
from autograder.runner.ipython_cells import compile_cell, ipython_names
from autograder.runner.recording import STUDENT_FILE_PREFIX, describe_error

_passes = {}  # one pass per process and submission: the units and a training run share it


def needed_release_cells(preamble, cells):
    """The indices of the release cells that bind a name the student's cells read (other than
    the preamble's imports), directly or through a later release cell that is itself needed."""
    wanted = set().union(*(cell_names(cell["source"])[1] for cell in cells
                           if not cell.get("release"))) - cell_names(preamble)[0]
    needed = set()
    for cell in sorted(cells, key=lambda cell: -cell["index"]):
        if cell.get("release"):
            bound, read = cell_names(cell["source"])
            if bound & wanted:
                needed.add(cell["index"])
                wanted |= read
    return needed


class NotebookPass:
    """The submission's cells, run once each in notebook order, in one namespace."""

    def __init__(self, preamble, cells, on_student_code):
        self.namespace = {"__name__": "__main__"}
        names, self.shell = ipython_names(self.namespace)
        self.namespace.update(names)
        self.preamble = preamble
        self.cells = sorted(cells, key=lambda cell: cell["index"])
        self.needed = needed_release_cells(preamble, self.cells)
        self.on_student_code = on_student_code
        self.errors = {}  # index: the error its cell raised
        self.next = 0  # the position in self.cells of the next cell to run
        self.setup_error = None
        self.started = False

    def _start(self):
        self.started = True
        try:
            exec(compile_cell(self.preamble, "<setup cell>"), self.namespace)
        except Exception as error:
            self.setup_error = {"type": "SetupError", "message": f"the setup cell failed in the "
                                f"grader: {type(error).__name__}: {error}"}

    def run_until(self, last_index):
        """Runs every cell up to the notebook's cell `last_index` that has not run yet."""
        if not self.started:
            self._start()
        while self.next < len(self.cells) and self.cells[self.next]["index"] <= last_index:
            cell = self.cells[self.next]
            self.next += 1
            if cell.get("release") and cell["index"] not in self.needed:
                continue
            self.on_student_code()
            self.shell.filename = f"{STUDENT_FILE_PREFIX}{cell['label']}>"
            try:
                exec(compile_cell(cell["source"], self.shell.filename), self.namespace)
            except (Exception, SystemExit) as error:
                self.errors[cell["index"]] = describe_error(error)

    def define(self, name, program):
        """(function, error, notes) of `name`, whose program is these cells of the pass."""
        self.run_until(max(cell["index"] for cell in program))
        if self.setup_error is not None:
            return None, self.setup_error, []
        notes = [{"label": cell["label"], "error": self.errors[cell["index"]]}
                 for cell in program if not cell["own"] and cell["index"] in self.errors]
        notes += [{"remark": remark} for remark in self.shell.notes]
        own_errors = [self.errors[cell["index"]] for cell in program
                      if cell["own"] and cell["index"] in self.errors]
        if own_errors:
            return None, own_errors[-1], notes
        return _callable(self.namespace, name, notes)


def _callable(namespace, name, notes):
    if not callable(namespace.get(name)):
        return None, {"type": "NameError",
                      "message": f"the cell does not define a function named {name}"}, notes
    return namespace[name], None, notes


def _notebook_cells(programs):
    return {cell["index"]: cell for program in programs.values() for cell in program or []
            if "index" in cell}


def what_runs(preamble, programs):
    """{name: [(source, own)]}: the code that these programs run, without the release cells
    that will not run, labels or places. Two submissions with the same `what_runs` train the
    same functions: the judge's training runs are cached by it (the solution's notebook, and
    every submission whose failed functions were replaced by the solution's, train exactly
    the solution)."""
    needed = needed_release_cells(preamble, list(_notebook_cells(programs).values()))
    return {name: [(cell["source"], cell["own"]) for cell in program or []
                   if not cell.get("release") or cell["index"] in needed]
            for name, program in programs.items()}


def submission_pass(preamble, programs, on_student_code):
    """The pass over the notebook cells of these programs: made once per process, so that the
    units and a training run in the same process run the student's cells once."""
    cells = _notebook_cells(programs)
    key = json.dumps([preamble, sorted(cells.items())])
    if key not in _passes:
        _passes[key] = NotebookPass(preamble, list(cells.values()), on_student_code)
    return _passes[key]


def define_function(preamble, name, program, notebook):
    """(function, error, notes) of one function; error is None when the function is defined.

    notebook: the submission's pass (`submission_pass`), for a program with notebook places; a
    program without them runs alone, after the preamble, in a fresh namespace.
    """
    if program and all("index" in cell for cell in program):
        return notebook.define(name, program)
    alone = NotebookPass(preamble, [{**cell, "index": index}
                                    for index, cell in enumerate(program)],
                         notebook.on_student_code)
    return alone.define(name, alone.cells)
