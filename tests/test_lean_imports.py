"""diffusion_course/lean_imports.py: Keras starts without the optional packages that it only
imports because they are installed, and everyone else still imports them."""

import json
import os
import subprocess
import sys
from pathlib import Path

from autograder.runner.launch import BOOT

REPO_ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ["sklearn", "jax", "matplotlib", "cv2"]
# a fresh process on the TensorFlow backend: which optional packages `import keras` brought in
# (the lean finder installed first or not), then whether a student's own imports still work
PROBE = """
import json, sys
if {lean}:
    from diffusion_course.lean_imports import skip_unused_optional_imports
    skip_unused_optional_imports()
import keras
import diffusion_course.ddim
imported = [name for name in {optional} if name in sys.modules]
import sklearn, jax, matplotlib.pyplot, cv2
print(json.dumps({{"imported_by_keras": imported, "student_imports": "ok"}}))
"""


def _probe(lean):
    environment = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3",
                   "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", PROBE.format(lean=lean, optional=OPTIONAL)],
                            capture_output=True, text=True, env=environment, cwd=REPO_ROOT,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_keras_starts_without_the_optional_packages_and_students_still_import_them():
    assert _probe(lean=True) == {"imported_by_keras": [], "student_imports": "ok"}


def test_without_the_finder_keras_imports_them_all():
    # what the finder saves: if a Keras release stops importing one of these, drop it from
    # lean_imports.UNUSED_OPTIONAL_IMPORTS
    assert _probe(lean=False)["imported_by_keras"] == OPTIONAL


def test_the_grading_kernel_and_the_runner_install_it_before_anything_imports_keras():
    kernel = json.loads((REPO_ROOT / "autograder/kernels/ddim-grading/kernel.json").read_text())
    kernel_boot = kernel["argv"][kernel["argv"].index("-c") + 1]
    for boot, then in ((BOOT, "student_runner"), (kernel_boot, "kernelapp")):
        assert "skip_unused_optional_imports()" in boot
        assert boot.index("skip_unused_optional_imports()") < boot.index(then), boot
