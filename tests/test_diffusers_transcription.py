"""The committed diffusers fixture against the real diffusers schedulers, where installed.

CI does not install diffusers and PyTorch (see diffusers_steps.py), so there this is skipped
(test_diffusers_fixture.py checks the transcription against the committed outputs instead).
Run it in a venv of its own, without the course's conftest (which needs Keras):

    python -m venv /tmp/venv-diffusers
    /tmp/venv-diffusers/bin/pip install torch==2.13.0 diffusers==0.42.1 numpy pytest
    /tmp/venv-diffusers/bin/python -m pytest --noconftest -o addopts="" \
        tests/test_diffusers_transcription.py
"""

import numpy as np
import pytest
from diffusers_fixture import CASES, DIFFUSERS_OUTPUTS, case_name, run_diffusers, transcription

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def live():
    return run_diffusers()


def test_the_committed_fixture_is_what_diffusers_gives(live):
    with np.load(DIFFUSERS_OUTPUTS) as stored:
        assert sorted(stored.files) == sorted(live)
        for name in stored.files:
            np.testing.assert_array_equal(stored[name], live[name], err_msg=name)


@pytest.mark.parametrize("case", CASES, ids=case_name)
def test_the_transcription_steps_as_diffusers_does(live, case):
    prev_sample, pred_original_sample = transcription(live, case)
    name = case_name(case)
    np.testing.assert_allclose(prev_sample, live[f"{name}/prev_sample"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pred_original_sample, live[f"{name}/pred_original_sample"],
                               atol=1e-12)
