"""The release's cells that the grading kernel does not run: nothing grades what they compute.

The notebook's own training run, its curves, its self-check on them and its generated images
decide no point: the judge trains the student's functions itself, in its runner, and
`ExternalVerdict` replaces the training test cell's outputs with its verdict. In the grading
kernel they were most of a submission's time (the training cell alone took 10-60 s on the
2-core machine, depending on its load). The network's summary shows a table and nothing else.
The data and KID cells feed only the training cell, so they run only when one of the student's
own cells reads a name they define (`train_dataset`, `kid`, ...), as a helper cell may.

So `StubUngradedCells` swaps each of these locked cells' code for one line that says why it did
not run, just before the kernel runs the notebook, and `RestoreUngradedCells` puts the code back
right after: the feedback shows the cell as the student knows it, with that line as its output.
"""

from nbgrader.preprocessors import NbGraderPreprocessor

from autograder.runner.cell_names import cell_names

# grade_ids of the release's cells: the network's summary, train, plot the curves, self-check
# them, generate
NOT_RUN_WHILE_GRADING = ("network", "train", "curves", "test_training_kid", "generate")
# run only for a student cell that reads what they define: load the data, build the KID
RUN_ONLY_FOR_STUDENT_CELLS = ("data", "kid")
STUB = ('print("Not run by the autograder: nothing it grades needs this cell (it trains your '
        'functions itself; that verdict is in the training test cell). Run the notebook '
        'yourself to see its output.")\n')
STASH = "autograder_ungraded_sources"  # resources key: {cell index: its code}


def _grade_id(cell):
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _locked(cell):
    return cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("locked", False)


def _not_run(nb):
    """The indices of the locked cells that the grading kernel skips."""
    read_by_students = set().union(*(cell_names(cell.source)[1] for cell in nb.cells
                                     if cell.cell_type == "code" and not _locked(cell)))
    return [index for index, cell in enumerate(nb.cells) if _locked(cell) and (
        _grade_id(cell) in NOT_RUN_WHILE_GRADING
        or (_grade_id(cell) in RUN_ONLY_FOR_STUDENT_CELLS
            and not cell_names(cell.source)[0] & read_by_students))]


class StubUngradedCells(NbGraderPreprocessor):
    """Before execution: each locked cell that the kernel skips prints why it is not run."""

    def preprocess(self, nb, resources):
        stash = resources[STASH] = {}
        for index in _not_run(nb):
            stash[index], nb.cells[index].source = nb.cells[index].source, STUB
        return nb, resources


class RestoreUngradedCells(NbGraderPreprocessor):
    """After execution: the stubbed cells get their code back, with the stub's output."""

    def preprocess(self, nb, resources):
        for index, source in resources.pop(STASH, {}).items():
            nb.cells[index].source = source
        return nb, resources
