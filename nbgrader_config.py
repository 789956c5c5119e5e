"""nbgrader 0.9 configuration of the course. Each setting says why it is there.

The course folder is this repository: `solutions/` is the instructor source and `assignment/`
the student release. Grading runs in a sandboxed kernel and the hidden tests run outside it
(see autograder/README.md). `python -m autograder demo` grades the bundled sample submissions.
"""

import os
import sys
import warnings
from pathlib import Path

import nbgrader
from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearOutput,
    DeduplicateIds,
    IgnorePattern,
    LimitOutput,
    OverwriteKernelspec,
    SaveAutoGrades,
)
from sqlalchemy.exc import SAWarning

REPO_ROOT = Path(__file__).resolve().parent
# the autograder package must be importable in nbgrader's own process (the verdict preprocessor)
sys.path.insert(0, str(REPO_ROOT))
# the gradebook's SQLAlchemy warnings are nbgrader's internals, not news for the instructor
warnings.filterwarnings("ignore", category=SAWarning)

from autograder.grading import gradebook  # noqa: E402
from autograder.grading.feedback import StudentFeedback  # noqa: E402
from autograder.intake.notebook_reader import NormaliseCells, SubmissionExporter  # noqa: E402
from autograder.nbgrader_steps.hidden_tests import RestoreHiddenTests  # noqa: E402
from autograder.nbgrader_steps.ungraded_cells import RestoreUngradedCells, StubUngradedCells  # noqa: E402
from autograder.nbgrader_steps.verdict_cells import ExternalVerdict, StartVerdict  # noqa: E402
from autograder.sandbox.kernel import PrivateExecute  # noqa: E402

c = get_config()  # noqa: F821 (nbgrader provides get_config)

# Course layout: our top-level folders instead of nbgrader's default step names.
c.CourseDirectory.root = os.environ.get("AUTOGRADER_COURSE_ROOT", str(REPO_ROOT))
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignment"
# Only notebooks are taken from a submission: a fake numpy/ or autograder/ folder beside the
# notebook would otherwise be copied next to it and shadow the real package.
c.CourseDirectory.include = ["*.ipynb"]

# The gradebook: sqlite in the course folder by default; NBGRADER_DB_URL switches it to a
# PostgreSQL server, which many grading processes on a cluster can write at once
# (autograder/grading/gradebook.py).
c.CourseDirectory.db_url = gradebook.db_url(c.CourseDirectory.root)
# nbgrader's own default course id: with the empty default, PostgreSQL (which, unlike sqlite,
# enforces foreign keys) refuses the assignment for want of its course.
c.CourseDirectory.course_id = "default_course"

# The sandboxed kernel (autograder/kernels/ddim-grading): nbgrader would otherwise use the source
# notebook's kernel name, and a missing kernel fails every submission with NoSuchKernel.
os.environ["JUPYTER_PATH"] = os.pathsep.join(
    filter(None, [str(REPO_ROOT / "autograder"), os.environ.get("JUPYTER_PATH")]))
c.Execute.kernel_name = "ddim-grading"
# PrivateExecute: that kernel talks over IPC sockets in a fresh folder of its own (the sandbox
# has no network, and no kernel may read another one's connection file); see sandbox/kernel.py.
# The library and the autograder are importable in the grading process; PYTHONPATH comes
# before the kernel's cwd, so a student's same-named folder cannot shadow them.
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
# nbgrader creates the gradebook with `alembic` from PATH: put this environment's bin first.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])

# Per-cell timeout: autograding always runs the quick profile, whose slowest cell (training)
# takes ~10 s on a 2-core CPU; a loop that never ends is interrupted after this many seconds.
c.Execute.timeout = int(os.environ.get("DDIM_CELL_TIMEOUT", "60"))
c.Execute.interrupt_on_timeout = True
# After a cell's reply its last outputs may lag on a loaded machine: nbgrader's 4 s failed the
# correct solution at a load of 30 on 2 cores ("Timeout waiting for IOPub output").
c.Execute.iopub_timeout = 60

# Any stderr output zeroes a passing test cell: silence TensorFlow's C++ logs in the kernel ...
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["KERAS_BACKEND"] = "tensorflow"
# ... and drop the warning lines that still reach stderr (absl, Keras/TF/numpy warnings).
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = (
    r"(?m)(WARNING: All log messages before absl|^[IWE]\d{4} |UserWarning|DeprecationWarning"
    r"|FutureWarning|RuntimeWarning|oneDNN custom operations|cuda_?(drivers|platform))"
)

# A test cell the student deleted is added back and graded, not left blank.
c.OverwriteCells.add_missing_cells = True
# Honest notebooks that nbgrader alone would fail (autograder/intake/notebook_reader.py): a
# byte-order mark,
# and copied cells or lost grade_ids, which crash add_missing_cells with KeyError: 'grade_id'.
# RestoreHiddenTests is nbgrader's OverwriteCells without its false "checksum has changed!"
# warning on every untouched test cell (autograder/nbgrader_steps/hidden_tests.py).
c.Autograde.exporter_class = SubmissionExporter
c.Autograde.sanitize_preprocessors = [
    NormaliseCells,
    ClearOutput,
    DeduplicateIds,
    OverwriteKernelspec,
    RestoreHiddenTests,
    CheckCellMetadata,
]

# The students' HTML feedback: named tests, each verdict once, wrapped text, no hidden tests,
# no grader paths, and "not graded yet" for the written summary (autograder/grading/feedback.py).
c.GenerateFeedback.preprocessors = [StudentFeedback, CSSHTMLHeaderPreprocessor]
c.HTMLExporter.template_name = "ddim_feedback"  # based on nbgrader's "feedback" template
c.HTMLExporter.template_file = "student_feedback.html.j2"
c.HTMLExporter.extra_template_basedirs = [
    str(REPO_ROOT / "autograder" / "grading" / "feedback_templates"),
    str(Path(nbgrader.__file__).parent / "server_extensions" / "formgrader" / "templates")]

# The similarity report beside the grade table (autograder/similarity/pairs.py): pairs of students
# from
# this similarity, submissions against the instructor's solution from this one. On the bundled
# samples honest independent solutions score 0.00-0.24, copies (verbatim, with renamed names and
# swapped helpers, with added comments) 1.00. Advice for a person: no grade depends on it.
c.SimilarityReport.pair_threshold = 0.5
c.SimilarityReport.solution_threshold = 0.8

# The hidden tests: StartVerdict starts the judge on the student's cells (in sandboxed runner
# processes, beside the kernel); ExternalVerdict replaces each graded test cell's outputs with
# its verdict, which the kernel cannot forge. The kernel skips the release's training, curves
# and generation cells, which grade nothing (autograder/nbgrader_steps/ungraded_cells.py).
c.Autograde.autograde_preprocessors = [
    StartVerdict,
    StubUngradedCells,
    PrivateExecute,
    RestoreUngradedCells,
    IgnorePattern,
    ExternalVerdict,
    ClearMetadataPreprocessor,
    LimitOutput,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]
