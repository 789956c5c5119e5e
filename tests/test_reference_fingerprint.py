"""The committed quick references come from today's training code (training_fingerprint.py).

Regenerating them takes minutes, too long for CI; their manifests record the fingerprint of the
code that trained them, and this test recomputes it.
"""

import shutil

import pytest

from diffusion_course.checkpoints import read_manifest
from diffusion_course.references import REFERENCE_RUNS, reference_checkpoint
from diffusion_course.training_fingerprint import PACKAGE_ROOT, training_fingerprint

QUICK_MODELS = [run.model for run in REFERENCE_RUNS["quick"]]


@pytest.mark.parametrize("model", QUICK_MODELS)
def test_the_quick_references_were_trained_by_todays_code(model):
    folder = reference_checkpoint("quick", model)
    recorded = read_manifest(folder)["extra"].get("training_code_sha256")
    assert recorded == training_fingerprint(model), (
        f"The code that trains the quick {model} reference has changed since {folder} was made "
        "(diffusion_course/training_fingerprint.py lists that code). Regenerate the references "
        "with `python -m diffusion_course references --profile quick` and commit them, with "
        "the README's KID figures if they move.")


@pytest.fixture
def package_copy(tmp_path):
    return shutil.copytree(PACKAGE_ROOT, tmp_path / "diffusion_course",
                           ignore=shutil.ignore_patterns("__pycache__"))


def edit(path, old, new):
    source = path.read_text()
    assert old in source
    path.write_text(source.replace(old, new, 1))


def test_comments_and_docstrings_leave_the_fingerprint_alone(package_copy):
    expected = {model: training_fingerprint(model) for model in QUICK_MODELS}
    edit(package_copy / "schedules.py", '"""Noise schedules', '"""The noise schedules')
    edit(package_copy / "schedules.py", "\n\nclass ", "\n\n# a new comment\nclass ")
    assert {model: training_fingerprint(model, package_copy) for model in QUICK_MODELS} == expected


@pytest.mark.parametrize("module, old, new, changed", [
    ("schedules.py", "DEFAULT_END_LOG_SNR = -7.5", "DEFAULT_END_LOG_SNR = -7.0", {"ddim"}),
    ("config.py", "PROFILES = (", "PROFILES = ( ", set()),  # layout only: the same tree
    ("gaussian_diffusion.py", "import", "import math\nimport", {"ddpm"}),
    ("references.py", "epochs=40", "epochs=41", {"ddim", "ddpm"}),
])
def test_a_change_of_the_training_code_changes_its_models_fingerprint(package_copy, module, old,
                                                                      new, changed):
    before = {model: training_fingerprint(model, package_copy) for model in QUICK_MODELS}
    edit(package_copy / module, old, new)
    after = {model: training_fingerprint(model, package_copy) for model in QUICK_MODELS}
    assert {model for model in QUICK_MODELS if after[model] != before[model]} == changed
