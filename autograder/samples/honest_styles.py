"""Honest notebooks as a class of 300 writes them: each must get full marks.

Each is the solution with what students do while they work: magics and shell escapes in a
helper cell, helpers that read the release's names (`config`, `SEED`, `train_dataset`), an
answer cell copied in Jupyter with its nbgrader metadata (a draft above the final one) and a test
cell copied below its original, answers split over cells and cells merged, prints and plots, and
the files that Colab and VS Code save. `notebooks(notebook_with, solution)` gives them to
`sample_submissions.build`, which writes them as sample submissions.
"""

import copy

MAGICS_CELL = """%matplotlib inline
%load_ext autoreload
%autoreload 2
!pip list | grep -i keras
import math


def interpolate(start, end, fraction):
    \"\"\"The point `fraction` of the way from start to end.\"\"\"
    return start + fraction * (end - start)
"""
TIMED_CELL = """%%time
halfway = interpolate(0.0, 1.0, 0.5)
%timeit -n 2 -r 1 interpolate(0.0, 1.0, 0.5)
display(halfway)
print("halfway:", halfway)
"""
HELPER_EDIT = ("diffusion_angles = start_angle + diffusion_times * (end_angle - start_angle)",
               "diffusion_angles = interpolate(start_angle, end_angle, diffusion_times)")

RELEASE_NAMES_CELL = """import math

print(config)
keras.utils.set_random_seed(SEED)
first_batch = next(iter(train_dataset))
print("a batch of", first_batch.shape, "images in", FLOWERS_SOURCE)
assert 0 < config.min_signal_rate < config.max_signal_rate <= 1
MIN_SIGNAL_RATE = config.min_signal_rate


def angle_bounds(config):
    \"\"\"The angles where the signal rate is config's max (t = 0) and min (t = 1).\"\"\"
    return math.acos(config.max_signal_rate), math.acos(config.min_signal_rate)
"""
RELEASE_NAMES_EDIT = (
    "start_angle = ops.arccos(self.config.max_signal_rate)\n"
    "    end_angle = ops.arccos(self.config.min_signal_rate)\n",
    "start_angle, end_angle = angle_bounds(self.config)\n")

SPLIT_HELPER_CELL = '''def predicted_images(noisy_images, noise_rates, signal_rates, pred_noises):
    """x0 from x_t and the predicted noise: eq. (9) of the DDIM paper, solved for x0."""
    return (noisy_images - noise_rates * pred_noises) / signal_rates
'''
SPLIT_EDIT = ("pred_images = (noisy_images - noise_rates * pred_noises) / signal_rates",
              "pred_images = predicted_images(noisy_images, noise_rates, signal_rates, "
              "pred_noises)")
PLOT_CELL = """import matplotlib.pyplot as plt

times = ops.linspace(0.0, 1.0, 11)
plt.plot(ops.convert_to_numpy(times), ops.convert_to_numpy(times) ** 2, label="my guess")
plt.legend()
plt.show()
"""

COLAB_METADATA = {"colab": {"provenance": [], "gpuType": "T4", "name": "ddim.ipynb"},
                  "accelerator": "GPU",
                  "kernelspec": {"display_name": "Python 3", "name": "python3"},
                  "language_info": {"name": "python"}}
VSCODE_METADATA = {"kernelspec": {"display_name": ".venv", "language": "python",
                                  "name": "python3"},
                   "language_info": {"codemirror_mode": {"name": "ipython", "version": 3},
                                     "file_extension": ".py", "mimetype": "text/x-python",
                                     "name": "python", "nbconvert_exporter": "python",
                                     "pygments_lexer": "ipython3", "version": "3.11.9"},
                   "vscode": {"interpreter": {"hash": "3f1e2a" * 10 + "ab12"}}}


def _code_cell(source, cell_id):
    return {"cell_type": "code", "execution_count": None, "id": cell_id, "metadata": {},
            "outputs": [], "source": source}


def _index(notebook, grade_id):
    return next(index for index, cell in enumerate(notebook["cells"])
                if cell["metadata"].get("nbgrader", {}).get("grade_id") == grade_id)


def _insert(notebook, before_grade_id, cell):
    notebook["cells"].insert(_index(notebook, before_grade_id), cell)
    return notebook


def _with_magics(notebook_with, solution):
    answers = {**solution, "diffusion_schedule": solution["diffusion_schedule"].replace(
        *HELPER_EDIT)}
    notebook = _insert(notebook_with(answers), "answer_diffusion_schedule",
                       _code_cell(MAGICS_CELL, "magics"))
    return _insert(notebook, "test_diffusion_schedule", _code_cell(TIMED_CELL, "timed"))


def _with_release_names(notebook_with, solution):
    answers = {**solution, "diffusion_schedule": solution["diffusion_schedule"].replace(
        *RELEASE_NAMES_EDIT)}
    return _insert(notebook_with(answers), "answer_diffusion_schedule",
                   _code_cell(RELEASE_NAMES_CELL, "usesconfig"))


def _with_copied_cells(notebook_with, solution, release):
    """A draft of denoise copied (metadata and all) above the final answer, and a copy of the
    schedule's test cell below it: what Jupyter's copy and paste writes."""
    notebook = notebook_with(solution)
    draft = copy.deepcopy(release["cells"][_index(release, "answer_denoise")])
    draft["id"] = "draftcopy"
    _insert(notebook, "answer_denoise", draft)
    test_copy = copy.deepcopy(notebook["cells"][_index(notebook, "test_diffusion_schedule")])
    test_copy["id"] = "testcopy"
    notebook["cells"].insert(_index(notebook, "test_diffusion_schedule") + 1, test_copy)
    return notebook


def _with_split_cells_and_plots(notebook_with, solution):
    """denoise's helper in a cell of its own below the answer (split), a plot and prints in
    extra cells, and an answer cell with a print merged into it."""
    answers = {**solution,
               "denoise": solution["denoise"].replace(*SPLIT_EDIT),
               "reverse_diffusion": solution["reverse_diffusion"]
               + '\n\nprint("reverse_diffusion is defined")\n'}
    notebook = _insert(notebook_with(answers), "test_denoise",
                       _code_cell(SPLIT_HELPER_CELL, "splithelper"))
    return _insert(notebook, "answer_reverse_diffusion", _code_cell(PLOT_CELL, "myplot"))


def _colab(notebook_with, solution):
    """As Colab saves it: nbformat 4.0, no cell ids but an "id" in each cell's metadata."""
    notebook = notebook_with(solution)
    notebook["metadata"] = copy.deepcopy(COLAB_METADATA)
    notebook["nbformat_minor"] = 0
    for number, cell in enumerate(notebook["cells"]):
        cell["metadata"]["id"] = cell.pop("id", f"c{number}")
        if cell["cell_type"] == "code":
            cell["metadata"]["colab"] = {"base_uri": "https://localhost:8080/"}
            cell["metadata"]["outputId"] = f"0a1b2c3d-{number:04d}"
    return notebook


def _vscode(notebook_with, solution):
    """As VS Code saves it: its kernel and interpreter metadata."""
    notebook = notebook_with(solution)
    notebook["metadata"] = copy.deepcopy(VSCODE_METADATA)
    return notebook


def notebooks(notebook_with, solution, release):
    """{student: notebook} of the honest styles of this module."""
    return {
        "honest-magics-and-shell-escapes": _with_magics(notebook_with, solution),
        "honest-helper-uses-release-names": _with_release_names(notebook_with, solution),
        "honest-copied-cells": _with_copied_cells(notebook_with, solution, release),
        "honest-split-cells-and-plots": _with_split_cells_and_plots(notebook_with, solution),
        "honest-colab": _colab(notebook_with, solution),
        "honest-vscode": _vscode(notebook_with, solution),
    }


# judged through judge.grade (tests/test_judge_notebooks.py); honest-copied-cells goes through
# nbgrader's own preprocessors first (the same file), which is where it used to fail
STYLES = [
    "honest-magics-and-shell-escapes", "honest-helper-uses-release-names", "honest-copied-cells",
    "honest-split-cells-and-plots", "honest-colab", "honest-vscode"]
