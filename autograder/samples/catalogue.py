"""The sample submissions that the autograder is tested on, and the grades they must get.

    python -m autograder.samples.catalogue     # rewrites autograder/samples/submissions/

Every submission starts from the committed student release (`assignment/ddim/ddim.ipynb`) with
answer cells filled in: the solution, the solution in another honest style, one typical mistake
(`autograder/samples/mistakes.py`), a cheat or attack (`autograder/samples/attacks.py`), or
something broken.
`EXPECTED_SCORES` is what `python -m autograder demo` must give each (the end-to-end test asserts
every cell), and autograder/README.md shows the same table.

Git cannot hold a hard link or a FIFO, so `build(target, special_files=True)` (what the
end-to-end test grades) adds the samples in `SPECIAL_FILE_SAMPLES`; the committed folder has
the others.
"""

import json
import os
import shutil
import sys
from pathlib import Path

from autograder.assignment.solution import FUNCTION_NAMES, solution_sources
from autograder.samples import honest_styles
from autograder.samples.attacks import ATTACKS
from autograder.samples.copies import SIMILARITY_SAMPLES
from autograder.samples.mistakes import MISTAKES, mistaken_submission, unanswered_submission

REPO_ROOT = Path(__file__).resolve().parents[2]
RELEASE = REPO_ROOT / "assignment" / "ddim" / "ddim.ipynb"
SUBMISSIONS = Path(__file__).resolve().parent / "submissions"
NOTEBOOK = "ddim.ipynb"


def autograded_points(release=RELEASE):
    """{grade_id: points} of the release's autograded cells (nbgrader's metadata: graded, not
    a solution), in the notebook's order."""
    cells = json.loads(Path(release).read_text(encoding="utf-8"))["cells"]
    return {nbgrader["grade_id"]: nbgrader["points"] for nbgrader in
            (cell.get("metadata", {}).get("nbgrader", {}) for cell in cells)
            if nbgrader.get("grade") and not nbgrader.get("solution")}


POINTS = autograded_points()
SUMMARY = ("I implemented the cosine schedule, the denoiser and the DDIM sampler, and trained "
           "the quick profile on a CPU; the noise MAE fell well below 0.798.")

# ---- cheats: each also leaves the functions unimplemented, so it earns nothing honestly ------

PATCH_ASSERTIONS = '''\
import numpy as np
import numpy.testing
from diffusion_course import selfcheck
numpy.testing.assert_allclose = lambda *args, **kwargs: None
np.allclose = lambda *args, **kwargs: True
selfcheck._expect = lambda condition, message: None
try:
    import autograder.judge
    autograder.judge.grade = lambda *args, **kwargs: {}
except ImportError:
    pass
'''

INPUT_TRANSFORMER = '''\
def _skip_the_tests(lines):
    # every later cell that checks something becomes `pass`
    text = "".join(lines)
    return ["pass\\n"] if "selfcheck" in text or "assert" in text else lines
get_ipython().input_transformers_cleanup.append(_skip_the_tests)
'''

READ_SOLUTIONS = '''\
import json as _json, pathlib as _pathlib, diffusion_course as _library
_course = _pathlib.Path(_library.__file__).resolve().parents[1]
_solution = _json.loads((_course / "solutions" / "ddim" / "ddim.ipynb").read_text())
for _cell in _solution["cells"]:
    if _cell["metadata"].get("nbgrader", {}).get("grade_id", "").startswith("answer_"):
        exec("".join(_cell["source"]))
'''

REWRITE_GRADEBOOK = '''\
import subprocess as _subprocess, sys as _sys
_rewriter = """
import pathlib, sqlite3, time
gradebook = pathlib.Path.cwd().parents[2] / "gradebook.db"
for attempt in range(900):
    time.sleep(0.2)
    try:
        with sqlite3.connect(gradebook, timeout=1) as database:
            database.execute("UPDATE grade SET manual_score = 5")
    except Exception:
        pass
"""
_subprocess.Popen([_sys.executable, "-c", _rewriter], start_new_session=True,
                  stdout=_subprocess.DEVNULL, stderr=_subprocess.DEVNULL)
'''

CHEATS = {
    "cheat-patched-assertions": PATCH_ASSERTIONS,
    "cheat-input-transformer": INPUT_TRANSFORMER,
    "cheat-reads-solutions": READ_SOLUTIONS,
    "cheat-rewrites-gradebook": REWRITE_GRADEBOOK,
    "cheat-fake-packages": "",  # the cheat is the folders beside the notebook
}
FAKE_PACKAGES = {
    "numpy/__init__.py": "def allclose(*args, **kwargs):\n    return True\n",
    "autograder/__init__.py": "",
    "autograder/judge.py": "def grade(*args, **kwargs):\n    return {}\n",
}

# ---- honest styles: each must get full marks ---------------------------------------------

HELPER_CELL = '''\
import math


def interpolate(start, end, fraction):
    """The point `fraction` of the way from start to end."""
    return start + fraction * (end - start)
'''
HELPER_EDIT = ("diffusion_angles = start_angle + diffusion_times * (end_angle - start_angle)",
               "diffusion_angles = interpolate(start_angle, end_angle, diffusion_times)")
LAB_CELL_METADATA = {"jupyter": {"source_hidden": False, "outputs_hidden": False},
                     "tags": [], "trusted": True,
                     "execution": {"iopub.execute_input": "2026-01-12T09:00:00.000Z",
                                   "shell.execute_reply": "2026-01-12T09:00:01.000Z"}}
LAB_OUTPUTS = [{"output_type": "stream", "name": "stdout", "text": ["ran in JupyterLab\n"]},
               {"output_type": "display_data", "metadata": {},
                "data": {"text/plain": ["<Figure size 400x400 with 4 Axes>"],
                         "image/png": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
                                      "nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="}}]

NOTHING = {cell: 0 for cell in POINTS}
FULL = dict(POINTS)


def _all_but(cell):
    return {**FULL, cell: 0}


HONEST_STYLES = ["honest-helpers-in-extra-cell", "honest-windows-line-endings",
                 "honest-byte-order-mark", "honest-classic-notebook", "honest-jupyterlab"]
SPECIAL_FILE_SAMPLES = ["cheat-hard-links-solution", "broken-fifo-notebook"]

EXPECTED_SCORES = {
    "correct": FULL,
    **{name: FULL for name in HONEST_STYLES},
    **{name: FULL for name in honest_styles.STYLES},
    **{name: FULL for name in SIMILARITY_SAMPLES},  # copies earn full marks; the report says
    "untouched": NOTHING,
    **{f"mistake-{name.replace('_', '-')}": _all_but(f"test_{mistake.function}")
       for name, mistake in MISTAKES.items()},
    **{name: NOTHING for name in CHEATS},
    **{name: NOTHING for name in ATTACKS},  # NOTHING: every cell 0, or `-` (FAILED)
    "cheat-symlinks-solution": None,
    "cheat-symlinks-neighbour": None,
    "cheat-hard-links-solution": None,
    "broken-fifo-notebook": None,
    "broken-kernel-exit": None,  # None: the whole submission fails, with its reason reported
    "broken-invalid-json": None,
    "broken-renamed-file": None,
    # the endless loop is interrupted by the cell timeout; only denoise, where it is, fails
    "broken-endless-loop": _all_but("test_denoise"),
}
# Where CI checks each grade. The end-to-end test (tests/test_autograder.py) runs nbgrader on
# the samples whose point is the file, the notebook format or the kernel: the release, the
# refusals, the attacks, the editors' formats. These samples' point is the judge's verdict on the
# answers (a mistake, a helper cell, CRLF inside the code), which is all that nbgrader's hook
# asks of `judge.grade` for them: tests/test_judge.py and tests/test_judge_notebooks.py grade
# them through it, and a full notebook run each would add only minutes. `python -m
# autograder.grading.demo` grades them all.
JUDGE_LEVEL_SAMPLES = [*(f"mistake-{name.replace('_', '-')}" for name in MISTAKES),
                       "honest-helpers-in-extra-cell", "honest-windows-line-endings",
                       *honest_styles.STYLES, *SIMILARITY_SAMPLES]
EXPECTED_FAILURES = {
    "broken-kernel-exit": "autograding failed",
    "broken-invalid-json": "the notebook is not valid JSON",
    "broken-renamed-file": "was the file renamed?",
    "broken-endless-loop": "did not finish in time",
    "bomb-memory": "memory limit 2 GiB exceeded in the notebook's kernel",
    "cheat-symlinks-solution": "ddim.ipynb is a symbolic link",
    "cheat-symlinks-neighbour": "ddim.ipynb is a symbolic link",
    "cheat-hard-links-solution": "ddim.ipynb is a hard link",
    "broken-fifo-notebook": "ddim.ipynb is not a regular file",
}


def _notebook_with(answers, summary=SUMMARY):
    """The release notebook with the given answer-cell sources and summary text."""
    notebook = json.loads(RELEASE.read_text())
    for cell in notebook["cells"]:
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id", "")
        if grade_id.startswith("answer_") and grade_id[len("answer_"):] in answers:
            cell["source"] = answers[grade_id[len("answer_"):]]
        elif grade_id == "summary" and summary is not None:
            cell["source"] = summary
    return notebook


def _text(notebook):
    return json.dumps(notebook, indent=1) + "\n"


def _write(target, student, notebook, name=NOTEBOOK, extra_files=None):
    folder = Path(target) / student
    folder.mkdir(parents=True)
    text = notebook if isinstance(notebook, str) else _text(notebook)
    (folder / name).write_bytes(text.encode())
    for relative, content in (extra_files or {}).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(content)


def _with_helper_cell(notebook):
    """A code cell of the student's own, with an import and a helper, before the answers."""
    cells = notebook["cells"]
    first_answer = next(index for index, cell in enumerate(cells)
                        if cell["metadata"].get("nbgrader", {}).get("solution"))
    cells.insert(first_answer, {"cell_type": "code", "execution_count": None, "id": "myhelpers",
                                "metadata": {}, "outputs": [], "source": HELPER_CELL})
    return notebook


def _classic(notebook):
    """As the classic Notebook saves it: nbformat 4.4, no cell ids."""
    notebook["nbformat_minor"] = 4
    for cell in notebook["cells"]:
        cell.pop("id", None)
    return notebook


def _jupyterlab(notebook):
    """As JupyterLab saves it after a run: its cell metadata, outputs, execution counts."""
    notebook["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    for count, cell in enumerate(notebook["cells"], start=1):
        cell["metadata"].update(json.loads(json.dumps(LAB_CELL_METADATA)))
        if cell["cell_type"] == "code":
            cell["execution_count"] = count
            cell["outputs"] = json.loads(json.dumps(LAB_OUTPUTS))
    return notebook


def _write_honest_styles(target, solution):
    helper_answers = {**solution, "diffusion_schedule": solution["diffusion_schedule"].replace(
        *HELPER_EDIT)}
    _write(target, "honest-helpers-in-extra-cell",
           _with_helper_cell(_notebook_with(helper_answers)))
    windows = {name: source.replace("\n", "\r\n") for name, source in solution.items()}
    _write(target, "honest-windows-line-endings",
           _text(_notebook_with(windows)).replace("\n", "\r\n"))
    _write(target, "honest-byte-order-mark", "\ufeff" + _text(_notebook_with(solution)))
    _write(target, "honest-classic-notebook", _classic(_notebook_with(solution)))
    _write(target, "honest-jupyterlab", _jupyterlab(_notebook_with(solution)))
    release = json.loads(RELEASE.read_text())
    for student, notebook in honest_styles.notebooks(_notebook_with, solution, release).items():
        _write(target, student, notebook)


def _write_links(target, solution):
    """Notebooks that are links: to the instructor's solution, to a neighbour's notebook (and a
    dangling link beside it, which must not stop the collection of the class)."""
    solution_notebook = REPO_ROOT / "solutions" / "ddim" / NOTEBOOK
    for student, linked in [("cheat-symlinks-solution", solution_notebook),
                            ("cheat-symlinks-neighbour", Path(target) / "correct" / NOTEBOOK)]:
        folder = Path(target) / student
        folder.mkdir(parents=True)
        (folder / NOTEBOOK).symlink_to(os.path.relpath(linked, folder))
    (Path(target) / "cheat-symlinks-neighbour" / "notes.txt").symlink_to("nowhere/notes.txt")


def _write_special_files(target, solution):
    """A hard link to a copy of the solution outside the submissions, and a FIFO notebook (a
    reader that follows it would wait forever)."""
    outside = Path(target).with_name(Path(target).name + "-outside")
    outside.mkdir(exist_ok=True)
    (outside / NOTEBOOK).write_text(_text(_notebook_with(solution)))
    (Path(target) / "cheat-hard-links-solution").mkdir()
    os.link(outside / NOTEBOOK, Path(target) / "cheat-hard-links-solution" / NOTEBOOK)
    (Path(target) / "broken-fifo-notebook").mkdir()
    os.mkfifo(Path(target) / "broken-fifo-notebook" / NOTEBOOK)


def build(target=SUBMISSIONS, special_files=False):
    """Rewrites `target` from the release, the solution, the mistakes and the attacks; with
    `special_files`, also the samples that git cannot hold (SPECIAL_FILE_SAMPLES)."""
    target = Path(target)
    if target.exists():
        shutil.rmtree(target)
    solution = solution_sources()
    unanswered = unanswered_submission(*FUNCTION_NAMES)

    _write(target, "correct", _notebook_with(solution))
    _write(target, "untouched", json.loads(RELEASE.read_text()))
    _write_honest_styles(target, solution)
    for name in MISTAKES:
        _write(target, f"mistake-{name.replace('_', '-')}",
               _notebook_with(mistaken_submission(name)))
    for student, cheat in CHEATS.items():
        answers = {**unanswered, "diffusion_schedule": cheat + unanswered["diffusion_schedule"]}
        if student == "cheat-reads-solutions":
            answers = {name: cheat for name in FUNCTION_NAMES}
        extra = FAKE_PACKAGES if student == "cheat-fake-packages" else None
        _write(target, student, _notebook_with(answers), extra_files=extra)
    for student, attack in ATTACKS.items():
        answers = {**unanswered, "diffusion_schedule": attack + unanswered["diffusion_schedule"]}
        _write(target, student, _notebook_with(answers))
    for student, (answers, copied) in SIMILARITY_SAMPLES.items():
        if copied is None:
            _write(target, student, _notebook_with(answers))
        else:
            shutil.copytree(target / copied, target / student)
    _write_links(target, solution)
    if special_files:
        _write_special_files(target, solution)

    _write(target, "broken-kernel-exit", _notebook_with(
        {**solution, "denoise": "import os\nos._exit(1)\n" + solution["denoise"]}))
    _write(target, "broken-invalid-json", json.dumps(_notebook_with(solution))[:2000])
    _write(target, "broken-renamed-file", _notebook_with(solution), name="ddim (1).ipynb")
    _write(target, "broken-endless-loop", _notebook_with(
        {**solution, "denoise": "while True:\n    pass\n" + solution["denoise"]}))
    return sorted(path.name for path in target.iterdir())


if __name__ == "__main__":
    students = build()
    print(f"wrote {len(students)} submissions to {SUBMISSIONS}", file=sys.stderr)
