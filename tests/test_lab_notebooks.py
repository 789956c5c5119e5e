"""The lab notebooks: committed without outputs, and executable top to bottom (quick profile).

Execution uses the kernel "python3" of this environment (jupyter_client starts it with this
interpreter), synthetic images (CI has no internet) and a temporary output folder. Between them
the runs take both paths of the reference-checkpoint cell: the walkthrough is pointed at a
missing checkpoint, so it takes its fallback (train a quick stand-in); the visualisations and
the design space look where the notebooks look by default, so they load the committed quick
checkpoints.
"""

import time
from pathlib import Path

import nbformat
import pytest
from PIL import Image

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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NOTEBOOK_IDS)
def test_notebook_runs_top_to_bottom_with_the_quick_profile(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

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
    client = NotebookClient(notebook, kernel_name="python3", timeout=600,
                            resources={"metadata": {"path": str(LAB)}})
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
    if path.name == "02_ddim_visualisations.ipynb":
        with Image.open(tmp_path / "ddim_visualisations" / "training.gif") as gif:
            assert gif.n_frames == 6  # one per epoch, each labelled "epoch N (synthetic images)"
            assert gif.size == (8 * 16 * 4 + 7 * 2, 2 * 16 * 4 + 2 + LABEL_HEIGHT)
    default_model = DEFAULT_MODELS[path.name]
    if checkpoint_dir is None and (LAB.parent / f"data/checkpoints/quick/{default_model}").is_dir():
        assert f"Loaded ../data/checkpoints/quick/{default_model}" in printed
    else:
        assert "No reference checkpoint" in printed
