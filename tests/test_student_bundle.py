"""The student bundle (`python -m autograder bundle`): the course without the answers.

The no-answers check must find a solution function however it is renamed or restyled, in a
module inside the wheel and in a notebook cell, and find nothing in the real bundle. The labs
run from the installed bundle in tests/test_lab_notebooks.py.
"""

import json
import shutil
import sys
import zipfile

import pytest
from student_venv import make_student_venv, pip_install, run_python

from autograder.__main__ import main
from autograder.bundle import no_answers
from autograder.bundle.build import BundleError, build_bundle, check_no_answers
from autograder.bundle.parts import DESIGN_SPACE, REPO_ROOT, STUDENT

# written for this test, not taken from the solution: the assignment's denoise with every name
# changed, and its cosine schedule as the method of a class with the bounds as attributes
RENAMED_DENOISE = '''
def split_components(model, mixed, sigma, alpha, train):
    """Separates noisy pictures."""
    net = model.network if train else model.ema_network
    eps_hat = net([mixed, sigma**2], training=train)  # the predicted noise
    x0_hat = (mixed - sigma * eps_hat) / alpha
    return eps_hat, x0_hat
'''
SCHEDULE_AS_CLASS_METHOD = '''
from keras import ops


class CosineRates:
    def __init__(self, lowest=0.02, highest=0.95):
        self.lowest, self.highest = lowest, highest

    def __call__(self, t):
        first = ops.arccos(self.highest)
        last = ops.arccos(0.02)
        t = ops.cast(t, "float64")
        angle = first + t * (last - first)
        cosine = ops.cos(angle)
        sine = ops.sin(angle)
        return sine, cosine
'''
# the same length and names, another computation: must not be flagged
NEAR_MISS = '''
def denoise(self, noisy_images, noise_rates, signal_rates, training):
    network = self.network if training else self.ema_network
    pred_noises = network([noisy_images, noise_rates], training=training)
    pred_images = noisy_images - noise_rates * pred_noises
    return pred_noises, pred_images
'''


@pytest.fixture(scope="module")
def student_bundle(tmp_path_factory):
    return build_bundle(STUDENT, tmp_path_factory.mktemp("bundle") / "student")


def wheel_of(bundle):
    return next((bundle / "wheels").glob("*.whl"))


def test_the_student_bundle_holds_the_course_and_no_grader(student_bundle):
    files = {path.relative_to(student_bundle).as_posix() for path in student_bundle.rglob("*")
             if path.is_file()}
    assert {"README.md", "requirements.txt", "environment.yml", "assignment/ddim/ddim.ipynb",
            "lab/01_ddpm_walkthrough.ipynb", "lab/02_ddim_visualisations.ipynb",
            "data/checkpoints/quick/ddpm/manifest.json"} <= files
    assert not [name for name in files if name.startswith(("solutions", "autograder"))
                or "03_design_space" in name or "quick/ddim" in name]
    members = zipfile.ZipFile(wheel_of(student_bundle)).namelist()
    for module in ("schedules", "parametrizations", "configurable_ddim", "continuous_samplers",
                   "sampler_comparison", "cli/__init__"):
        assert f"diffusion_course/{module}.py" not in members
    assert "diffusion_course/selfcheck.py" in members
    # the released assignment, as nbgrader released it: its answer cells are empty
    assert (student_bundle / "assignment/ddim/ddim.ipynb").read_bytes() == \
        (REPO_ROOT / "assignment/ddim/ddim.ipynb").read_bytes()
    # the requirements install the wheel, not this repository
    requirements = (student_bundle / "requirements.txt").read_text()
    assert f"./wheels/{wheel_of(student_bundle).name}" in requirements.splitlines()
    assert "-e ." not in requirements and "nbgrader" not in requirements
    environment = (student_bundle / "environment.yml").read_text()
    assert [line for line in requirements.splitlines() if line and not line.startswith("#")] \
        == [line.strip()[2:] for line in environment.split("- pip:\n", 1)[1].splitlines()]


def test_the_real_bundle_has_no_answers(student_bundle):
    checked = [where for path in student_bundle.rglob("*") if path.is_file()
               for where, _ in no_answers.python_pieces(path.name, path)]
    assert f"{wheel_of(student_bundle).name}!diffusion_course/selfcheck.py" in checked
    assert no_answers.find_answers(student_bundle) == []


def test_the_check_finds_each_solution_in_the_solution_notebook():
    found = no_answers.find_answers(REPO_ROOT / "solutions")
    assert {finding.answer for finding in found} == {
        "diffusion_schedule", "denoise", "reverse_diffusion"}


def test_planted_copies_are_found_and_named(student_bundle, tmp_path):
    planted = shutil.copytree(student_bundle, tmp_path / "planted")
    wheel = wheel_of(planted)
    with zipfile.ZipFile(wheel, "a") as archive:
        archive.writestr("diffusion_course/helpers.py", RENAMED_DENOISE + NEAR_MISS)
    lab = planted / "lab/02_ddim_visualisations.ipynb"
    notebook = json.loads(lab.read_text())
    notebook["cells"].append({"cell_type": "code", "metadata": {}, "outputs": [],
                              "execution_count": None, "source": SCHEDULE_AS_CLASS_METHOD})
    lab.write_text(json.dumps(notebook))

    found = sorted(map(str, no_answers.find_answers(planted)))
    cell = len(notebook["cells"])
    assert found == [
        f"lab/02_ddim_visualisations.ipynb cell {cell}, line 9: __call__() holds the "
        "solution's diffusion_schedule()",
        f"wheels/{wheel.name}!diffusion_course/helpers.py, line 2: split_components() holds "
        "the solution's denoise()",
    ]
    with pytest.raises(BundleError, match="would hand out the answers"):
        check_no_answers(planted)


def test_a_student_module_that_needs_the_design_space_is_refused(tmp_path):
    repo = tmp_path / "repo"
    for name in ("diffusion_course", "requirements.txt", "environment.yml"):
        copy = shutil.copytree if (REPO_ROOT / name).is_dir() else shutil.copyfile
        copy(REPO_ROOT / name, repo / name)
    plotting = repo / "diffusion_course/plotting.py"
    plotting.write_text("from diffusion_course.schedules import make_schedule\n"
                        + plotting.read_text())
    with pytest.raises(BundleError, match=r"diffusion_course/plotting.py, line 1: imports "
                                          r"diffusion_course.schedules.make_schedule"):
        build_bundle(STUDENT, tmp_path / "out", repo_root=repo)
    assert not (tmp_path / "out").exists()


def test_bundle_refuses_a_non_empty_folder_unless_forced(tmp_path, capsys):
    out = tmp_path / "design-space"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["bundle", "--part", "design-space", "--out", str(out)]) == 2
    assert "is not empty (it holds notes.txt): choose a new or empty folder, or add --force" \
        in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"

    assert main(["bundle", "--part", "design-space", "--out", str(out), "--force"]) == 0
    assert not (out / "notes.txt").exists()
    assert (out / "lab/03_design_space.ipynb").is_file()


def test_the_design_space_installs_on_top_of_the_student_wheel(student_bundle, tmp_path):
    design_space = build_bundle(DESIGN_SPACE, tmp_path / "design-space")
    python = make_student_venv(tmp_path / "venv")
    pip_install(python, wheel_of(student_bundle), wheel_of(design_space))
    # found, not imported: importing it would import TensorFlow (seconds)
    printed = run_python(python, "import importlib.util\nfor module in ('__init__', "
                         "'configurable_ddim'):\n    print(importlib.util.find_spec("
                         "f'diffusion_course.{module}'.removesuffix('.__init__')).origin)",
                         cwd=tmp_path)
    assert printed.splitlines() == [
        str(tmp_path / "venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
            / "site-packages" / "diffusion_course" / f"{module}.py")
        for module in ("__init__", "configurable_ddim")]
    assert "evaluate" in run_python(python, "import runpy, sys; sys.argv = ['x', '--help']\n"
                                    "runpy.run_module('diffusion_course', run_name='__main__')",
                                    cwd=tmp_path)


def test_every_module_masked_while_grading_stays_out_of_the_student_wheel():
    """The sandbox masks the design space for answers (forbidden_imports); those modules
    implement the answers, so the student bundle must not ship them either."""
    from autograder.assignment.forbidden_imports import FORBIDDEN_MODULES
    from autograder.bundle.parts import is_design_space_module

    shipped = [module for module in FORBIDDEN_MODULES
               if not is_design_space_module(f"diffusion_course.{module}")]
    assert not shipped, f"in the student wheel but masked while grading: {shipped}"
