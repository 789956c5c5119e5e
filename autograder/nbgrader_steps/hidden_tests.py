"""nbgrader's OverwriteCells, without its false alarm on every untouched test cell.

The release's test cells have their hidden tests cut out (`### BEGIN HIDDEN TESTS` ...), but the
gradebook keeps the checksum of the full cell. So nbgrader's OverwriteCells logs
"Attribute 'checksum' for cell test_... has changed!" for every submission, the untouched
release included, which reads as tampering. Here a test cell that is exactly the released one
gets its hidden tests back first, silently; a cell the student really edited is still reported
and restored by nbgrader as before.
"""

from nbformat.notebooknode import NotebookNode
from nbgrader.api import MissingEntry
from nbgrader.preprocessors import ClearHiddenTests, OverwriteCells
from nbgrader.utils import is_locked


def released_source(source):
    """The source as the student received it: the hidden-test region removed."""
    cell = NotebookNode(cell_type="code", source=source, metadata={})
    ClearHiddenTests()._remove_hidden_test_region(cell)
    return cell.source


class RestoreHiddenTests(OverwriteCells):
    """OverwriteCells that restores the hidden tests of unedited test cells without a warning."""

    def preprocess_cell(self, cell, resources, cell_index):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is not None and is_locked(cell):
            try:
                source_cell = self.gradebook.find_source_cell(grade_id, self.notebook_id,
                                                              self.assignment_id)
            except MissingEntry:
                source_cell = None  # nbgrader itself reports the unknown cell
            if source_cell is not None and cell.source == released_source(source_cell.source):
                cell.source = source_cell.source
        return super().preprocess_cell(cell, resources, cell_index)
