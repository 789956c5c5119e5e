"""The nbgrader preprocessor that makes the hidden tests' verdicts tamper-proof.

It runs after the student's notebook has executed. It takes the three answer cells' source from
the notebook, asks `autograder.judge` to test them in fresh sandboxed processes against the
reference, and replaces the outputs of each graded test cell with that verdict: an error output
when it failed (nbgrader then gives 0), a partial score when the verdict gives one. Whatever the
student's kernel printed, patched or suppressed in those cells no longer counts.
"""

import json
import sys
from pathlib import Path

from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool

from autograder import VERDICTS_FILE, judge
from autograder.reference import FUNCTION_NAMES, setup_source

# The judge starts each runner in its own folder (written there) beside its copy of the student
# runner, the one file of the autograder that sandboxed code may see (read-only).
SANDBOX_PREFIX = (sys.executable, "-m", "autograder.sandbox", "run", "--limits", "runner",
                  "--write", ".", "--allow", "../student_runner.py", "--")


def answer_sources(notebook):
    """{function name: source of its answer cell}; an absent cell gives an empty source."""
    by_grade_id = {cell.metadata.get("nbgrader", {}).get("grade_id"): cell.source
                   for cell in notebook.cells if cell.cell_type == "code"}
    return {name: by_grade_id.get(f"answer_{name}", "") for name in FUNCTION_NAMES}


def verdict_outputs(verdict, points):
    """The outputs that make nbgrader score a test cell as the verdict says."""
    status = "PASSED" if verdict.passed else "FAILED"
    text = f"Autograder verdict (computed outside your notebook's kernel): {status}\n"
    outputs = [NotebookNode(output_type="stream", name="stdout", text=text + verdict.message
                            + "\n")]
    if not verdict.passed:
        outputs.append(NotebookNode(output_type="error", ename="AutograderVerdict",
                                    evalue=verdict.message, traceback=[verdict.message]))
    elif verdict.score_fraction < 1.0:
        # a number as the cell's result is nbgrader's way of giving partial credit
        score = round(points * verdict.score_fraction, 2)
        outputs.append(NotebookNode(output_type="execute_result", execution_count=None,
                                    metadata={}, data={"text/plain": repr(score)}))
    return outputs


class ExternalVerdict(NbGraderPreprocessor):
    """Replaces the graded test cells' outputs with verdicts computed outside the kernel."""

    enabled = Bool(True, help="Grade the DDIM functions outside the kernel").tag(config=True)

    def preprocess(self, nb, resources):
        verdicts = judge.grade(answer_sources(nb), setup_source(), sandbox_prefix=SANDBOX_PREFIX)
        for cell in nb.cells:
            metadata = cell.metadata.get("nbgrader", {})
            verdict = verdicts.get(metadata.get("grade_id"))
            if cell.cell_type == "code" and metadata.get("grade") and verdict is not None:
                cell.outputs = verdict_outputs(verdict, metadata.get("points", 0))
        folder = Path(resources.get("metadata", {}).get("path", "."))
        (folder / VERDICTS_FILE).write_text(json.dumps(
            {grade_id: {"passed": verdict.passed, "score_fraction": verdict.score_fraction,
                        "message": verdict.message} for grade_id, verdict in verdicts.items()},
            indent=2))
        return nb, resources
