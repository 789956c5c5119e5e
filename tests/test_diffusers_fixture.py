"""tests/diffusers_steps.py against diffusers' own outputs, committed as a fixture.

CI has no PyTorch or diffusers; tests/diffusers_fixture.py produced tests/data/diffusers_steps.npz
with the real DDIMScheduler.step and DDPMScheduler.step, and this checks the transcription
that the library's sampler tests rely on against it, case by case.
"""

import numpy as np
import pytest
from diffusers_fixture import CASES, DIFFUSERS_OUTPUTS, case_name, transcription


@pytest.fixture(scope="module")
def stored():
    with np.load(DIFFUSERS_OUTPUTS) as arrays:
        return dict(arrays)


def test_the_fixture_holds_every_case(stored):
    for case in CASES:
        for name in ("noise", "prev_sample", "pred_original_sample"):
            assert f"{case_name(case)}/{name}" in stored


@pytest.mark.parametrize("case", CASES, ids=case_name)
def test_the_transcription_steps_as_diffusers_did(stored, case):
    prev_sample, pred_original_sample = transcription(stored, case)
    name = case_name(case)
    np.testing.assert_allclose(prev_sample, stored[f"{name}/prev_sample"], rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(pred_original_sample, stored[f"{name}/pred_original_sample"],
                               rtol=1e-12, atol=1e-12)
