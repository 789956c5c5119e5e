"""tests/diffusers_steps.py against the real diffusers schedulers, where diffusers is installed.

CI does not install diffusers and PyTorch (see diffusers_steps.py), so there this is skipped;
run it in an environment that has them:

    pip install torch==2.13.0 diffusers==0.42.1 pytest numpy
    python -m pytest tests/test_diffusers_transcription.py
"""

import diffusers_steps
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

NUM_TRAIN_TIMESTEPS = 1000
NUM_INFERENCE_STEPS = 10
TIMESTEP = 700  # its previous timestep is 600


def scheduler(kind, **config):
    return getattr(diffusers, kind)(num_train_timesteps=NUM_TRAIN_TIMESTEPS, clip_sample=False,
                                    **config)


@pytest.fixture
def tensors():
    rng = np.random.default_rng(0)
    return [rng.normal(size=(2, 3, 4, 4)) for _ in range(3)]  # model output, sample, noise


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_step_is_diffusers(tensors, prediction_type, eta):
    model_output, sample, noise = tensors
    ddim = scheduler("DDIMScheduler", prediction_type=prediction_type)
    ddim.set_timesteps(NUM_INFERENCE_STEPS)
    ddim.alphas_cumprod = ddim.alphas_cumprod.double()
    expected = ddim.step(torch.from_numpy(model_output), TIMESTEP, torch.from_numpy(sample),
                         eta=eta, variance_noise=torch.from_numpy(noise))
    alphas_cumprod = ddim.alphas_cumprod.numpy()
    found = diffusers_steps.ddim_step(model_output, sample, alphas_cumprod[TIMESTEP],
                                      alphas_cumprod[TIMESTEP - 100], eta, noise, prediction_type)
    np.testing.assert_allclose(found[0], expected.prev_sample.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(found[1], expected.pred_original_sample.numpy(), atol=1e-12)


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
def test_ddpm_step_is_diffusers(tensors, prediction_type, variance_type):
    model_output, sample, noise = tensors
    ddpm = scheduler("DDPMScheduler", prediction_type=prediction_type,
                     variance_type=variance_type)
    ddpm.set_timesteps(NUM_INFERENCE_STEPS)
    ddpm.alphas_cumprod = ddpm.alphas_cumprod.double()
    ddpm.one = ddpm.one.double()
    generator = torch.Generator().manual_seed(0)
    expected = ddpm.step(torch.from_numpy(model_output), TIMESTEP, torch.from_numpy(sample),
                         generator=generator)
    # the noise that DDPMScheduler drew: the same generator, seed and shape
    drawn = diffusers.utils.torch_utils.randn_tensor(
        sample.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64).numpy()
    alphas_cumprod = ddpm.alphas_cumprod.numpy()
    found = diffusers_steps.ddpm_step(model_output, sample, alphas_cumprod[TIMESTEP],
                                      alphas_cumprod[TIMESTEP - 100], drawn, variance_type,
                                      prediction_type)
    np.testing.assert_allclose(found[0], expected.prev_sample.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(found[1], expected.pred_original_sample.numpy(), atol=1e-12)
