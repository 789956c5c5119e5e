"""The sample submissions that the autograder is tested on, and the grades they must get.

    python -m autograder.sample_submissions     # rewrites autograder/submissions/

Every submission starts from the committed student release (`assignment/ddim/ddim.ipynb`) with
answer cells filled in: the solution, one typical mistake (`autograder/mistakes.py`), a cheat,
or something broken. `EXPECTED_SCORES` is what `python -m autograder.demo` must give each
(the end-to-end test asserts every cell), and autograder/README.md shows the same table.
"""

import json
import shutil
import sys
from pathlib import Path

from autograder.mistakes import MISTAKES, mistaken_submission, unanswered_submission
from autograder.reference import FUNCTION_NAMES, solution_sources

REPO_ROOT = Path(__file__).resolve().parents[1]
RELEASE = REPO_ROOT / "assignment" / "ddim" / "ddim.ipynb"
SUBMISSIONS = Path(__file__).resolve().parent / "submissions"
NOTEBOOK = "ddim.ipynb"
POINTS = {"test_diffusion_schedule": 3, "test_denoise": 3, "test_reverse_diffusion": 4,
          "test_training_kid": 5}
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

NOTHING = {cell: 0 for cell in POINTS}
FULL = dict(POINTS)


def _all_but(cell):
    return {**FULL, cell: 0}


EXPECTED_SCORES = {
    "correct": FULL,
    "untouched": NOTHING,
    **{f"mistake-{name.replace('_', '-')}": _all_but(f"test_{mistake.function}")
       for name, mistake in MISTAKES.items()},
    **{name: NOTHING for name in CHEATS},
    "broken-kernel-exit": None,  # None: the whole submission fails, with its reason reported
    "broken-invalid-json": None,
    "broken-renamed-file": None,
    # the endless loop is interrupted by the cell timeout; only denoise, where it is, fails
    "broken-endless-loop": _all_but("test_denoise"),
}
EXPECTED_FAILURES = {
    "broken-kernel-exit": "autograding failed",
    "broken-invalid-json": "autograding failed",
    "broken-renamed-file": "was the file renamed?",
    "broken-endless-loop": "did not finish in time",
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


def _write(target, student, notebook, name=NOTEBOOK, extra_files=None):
    folder = Path(target) / student
    folder.mkdir(parents=True)
    text = notebook if isinstance(notebook, str) else json.dumps(notebook, indent=1) + "\n"
    (folder / name).write_text(text)
    for relative, content in (extra_files or {}).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(content)


def build(target=SUBMISSIONS):
    """Rewrites `target` from the release, the solution and the mistakes."""
    target = Path(target)
    if target.exists():
        shutil.rmtree(target)
    solution = solution_sources()
    unanswered = unanswered_submission(*FUNCTION_NAMES)

    _write(target, "correct", _notebook_with(solution))
    _write(target, "untouched", json.loads(RELEASE.read_text()))
    for name in MISTAKES:
        _write(target, f"mistake-{name.replace('_', '-')}",
               _notebook_with(mistaken_submission(name)))
    for student, cheat in CHEATS.items():
        answers = {**unanswered, "diffusion_schedule": cheat + unanswered["diffusion_schedule"]}
        if student == "cheat-reads-solutions":
            answers = {name: cheat for name in FUNCTION_NAMES}
        extra = FAKE_PACKAGES if student == "cheat-fake-packages" else None
        _write(target, student, _notebook_with(answers), extra_files=extra)

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
