"""The lab notebooks: committed without outputs, and executable top to bottom (quick profile).

Labs 01 and 02 run as students run them: from the student bundle (`python -m autograder
bundle`), its wheel installed in a venv where this repository is not importable
(tests/student_venv.py; it shares this environment's TensorFlow, nothing is installed twice),
in a kernel of that venv. Lab 03 belongs to the design space and runs from the repository, in
the kernel "python3" of this environment. All use synthetic images (CI has no internet) and a
temporary output folder. Between them the runs take both paths of the reference-checkpoint
cell: the walkthrough is pointed at a missing checkpoint, so it takes its fallback (train a
quick stand-in); the visualisations and the design space look where the notebooks look by
default, so they load the quick checkpoints (the bundle's copy, for lab 02).
"""

import os
import time
from pathlib import Path

import nbformat
import pytest
from PIL import Image
from student_venv import make_student_venv, pip_install, run_python, write_kernelspec

from autograder.bundle.build import build_bundle
from autograder.bundle.parts import STUDENT
from diffusion_course.plotting import LABEL_HEIGHT

LAB = Path(__file__).resolve().parents[1] / "lab"
NOTEBOOKS = sorted(LAB.glob("*.ipynb"))
NOTEBOOK_IDS = [path.name for path in NOTEBOOKS]
# the checkpoint each notebook is run with: None keeps the notebook's default
CHECKPOINT_DIRS = {"01_ddpm_walkthrough.ipynb": "missing-checkpoint",
                   "02_ddim_visualisations.ipynb": None,
                   "03_design_space.ipynb": None}
# the committed quick reference that each notebook loads by default
DEFAULT_MODELS = {"01_ddpm_walkthrough.ipynb": "ddpm", "02_ddim_visualisations.ipynb": "ddpm",
                  "03_design_space.ipynb": "ddim"}


# the labs of the student bundle, run from it; the others from the repository
BUNDLE_LABS = {Path(name).name for name in STUDENT.files if name.startswith("lab/")}
BUNDLE_KERNEL = "student-bundle"
# appended to a bundle lab's run: where its kernel found the library
LIBRARY_ORIGIN = "import diffusion_course\nprint('library from', diffusion_course.__file__)"


# every picture each notebook promises: grids, strips and plots as PNG, the training GIF
PICTURES = {"01_ddpm_walkthrough.ipynb": {"image/png": 8},
            "02_ddim_visualisations.ipynb": {"image/png": 5, "image/gif": 1},
            "03_design_space.ipynb": {"image/png": 4}}


def test_there_are_three_lab_notebooks():
    assert NOTEBOOK_IDS == ["01_ddpm_walkthrough.ipynb", "02_ddim_visualisations.ipynb",
                            "03_design_space.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NOTEBOOK_IDS)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [index for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
             and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, (
        f"{path.name}: code cells {dirty} have outputs or execution counts. Clear them before "
        "committing: jupyter nbconvert --clear-output --inplace " + str(path))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NOTEBOOK_IDS)
def test_notebook_uses_the_shared_profile_setting(path):
    sources = [cell.source for cell in nbformat.read(path, as_version=4).cells]
    assert sum("PROFILE = default_profile()" in source for source in sources) == 1


@pytest.fixture(scope="module")
def installed_bundle(tmp_path_factory):
    """The student bundle, its wheel installed in a venv that cannot import this repository,
    and a Jupyter kernel of that venv (under the returned folder's `jupyter/`)."""
    folder = tmp_path_factory.mktemp("installed-bundle")
    bundle = build_bundle(STUDENT, folder / "student")
    python = make_student_venv(folder / "venv")
    pip_install(python, *(bundle / "wheels").glob("*.whl"))
    write_kernelspec(python, folder / "jupyter", BUNDLE_KERNEL)
    return folder


def test_the_installed_bundle_cannot_import_the_repository(installed_bundle):
    printed = run_python(installed_bundle / "venv/bin/python", (
        "import importlib.util, diffusion_course\nprint(diffusion_course.__file__)\n"
        "for name in ('autograder', 'diffusion_course.schedules', "
        "'diffusion_course.configurable_ddim'):\n    print(importlib.util.find_spec(name))\n"
        "from diffusion_course.models import build_model\n"
        "try:\n    build_model('ddim', None)\nexcept ImportError as error:\n    print(error)"),
        cwd=installed_bundle / "student" / "lab")
    library, *missing, refusal = printed.splitlines()
    assert library.startswith(str(installed_bundle / "venv"))
    assert missing == ["None"] * 3
    assert "design space, which is not installed here" in refusal


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NOTEBOOK_IDS)
def test_notebook_runs_top_to_bottom_with_the_quick_profile(path, tmp_path, monkeypatch, request):
    from nbclient import NotebookClient

    lab, kernel = LAB, "python3"
    if path.name in BUNDLE_LABS:
        installed = request.getfixturevalue("installed_bundle")
        lab, kernel = installed / "student" / "lab", BUNDLE_KERNEL
        path = lab / path.name
        monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(
            filter(None, [str(installed / "jupyter"), os.environ.get("JUPYTER_PATH")])))
        monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("DIFFUSION_PROFILE", "quick")
    monkeypatch.setenv("FLOWERS_SOURCE", "synthetic")
    monkeypatch.setenv("LAB_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    checkpoint_dir = CHECKPOINT_DIRS[path.name]
    if checkpoint_dir is None:
        monkeypatch.delenv("LAB_CHECKPOINT_DIR", raising=False)
    else:
        monkeypatch.setenv("LAB_CHECKPOINT_DIR", str(tmp_path / checkpoint_dir))
    notebook = nbformat.read(path, as_version=4)
    if kernel == BUNDLE_KERNEL:
        notebook.cells.append(nbformat.v4.new_code_cell(LIBRARY_ORIGIN))
    client = NotebookClient(notebook, kernel_name=kernel, timeout=600,
                            resources={"metadata": {"path": str(lab)}})
    start = time.perf_counter()
    client.execute()
    print(f"{path.name} ran in {time.perf_counter() - start:.0f} s")

    outputs = [output for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    assert any("Profile in force: 'quick'" in output.get("text", "") for output in outputs)
    for mime_type, count in PICTURES[path.name].items():
        assert sum(mime_type in output.get("data", {}) for output in outputs) == count, mime_type
    assert not [output for output in outputs if output.get("name") == "stderr"]  # no log noise
    printed = "".join(output.get("text", "") for output in outputs)
    if kernel == BUNDLE_KERNEL:
        assert f"library from {installed / 'venv'}" in printed
    if path.name == "02_ddim_visualisations.ipynb":
        with Image.open(tmp_path / "ddim_visualisations" / "training.gif") as gif:
            assert gif.n_frames == 6  # one per epoch, each labelled "epoch N (synthetic images)"
            assert gif.size == (8 * 16 * 4 + 7 * 2, 2 * 16 * 4 + 2 + LABEL_HEIGHT)
    default_model = DEFAULT_MODELS[path.name]
    if checkpoint_dir is None and (lab.parent / f"data/checkpoints/quick/{default_model}").is_dir():
        assert f"Loaded ../data/checkpoints/quick/{default_model}" in printed
    else:
        assert "No reference checkpoint" in printed
