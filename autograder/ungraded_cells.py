"""The release's cells that the grading kernel does not run: nothing grades what they compute.

The notebook's own training run, its curves, its self-check on them and its generated images
decide no point: the judge trains the student's functions itself, in its runner, and
`ExternalVerdict` replaces the training test cell's outputs with its verdict. In the grading
kernel they were most of a submission's time (the training cell alone took 10-60 s on the
2-core machine, depending on its load). So `StubUngradedCells` swaps each of these locked
cells' code for one line that says why it did not run, just before the kernel runs the notebook,
and `RestoreUngradedCells` puts the code back right after: the feedback shows the cell as the
student knows it, with that line as its output.
"""

from nbgrader.preprocessors import NbGraderPreprocessor

# grade_ids of the release's cells: train, plot the curves, self-check them, generate
NOT_RUN_WHILE_GRADING = ("train", "curves", "test_training_kid", "generate")
STUB = ('print("Not run by the autograder: it trains your functions itself, and its verdict is '
        'in the training test cell. Run the notebook yourself to see these pictures.")\n')
STASH = "autograder_ungraded_sources"  # resources key: {cell index: its code}


def _grade_id(cell):
    return cell.metadata.get("nbgrader", {}).get("grade_id")


class StubUngradedCells(NbGraderPreprocessor):
    """Before execution: each locked cell of NOT_RUN_WHILE_GRADING prints why it is not run."""

    def preprocess(self, nb, resources):
        stash = resources[STASH] = {}
        for index, cell in enumerate(nb.cells):
            if (cell.cell_type == "code" and _grade_id(cell) in NOT_RUN_WHILE_GRADING
                    and cell.metadata["nbgrader"].get("locked")):
                stash[index], cell.source = cell.source, STUB
        return nb, resources


class RestoreUngradedCells(NbGraderPreprocessor):
    """After execution: the stubbed cells get their code back, with the stub's output."""

    def preprocess(self, nb, resources):
        for index, source in resources.pop(STASH, {}).items():
            nb.cells[index].source = source
        return nb, resources
