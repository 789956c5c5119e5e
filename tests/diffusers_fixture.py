"""diffusers' own DDIM and DDPM steps, stored so that CI can check the transcription without them.

CI does not install PyTorch and diffusers (diffusers_steps.py says why). This module runs the
real schedulers on the cases below; its output is committed as `DIFFUSERS_OUTPUTS` (an .npz),
which test_diffusers_fixture.py checks diffusers_steps.py against in every CI run.
test_diffusers_transcription.py reruns the schedulers wherever diffusers is installed and checks
that the committed file is what they give. To regenerate it, in a venv of its own:

    python -m venv /tmp/venv-diffusers
    /tmp/venv-diffusers/bin/pip install torch==2.13.0 diffusers==0.42.1 numpy pytest
    /tmp/venv-diffusers/bin/python tests/diffusers_fixture.py
"""

import functools
from pathlib import Path

import numpy as np

DIFFUSERS_OUTPUTS = Path(__file__).resolve().parent / "data" / "diffusers_steps.npz"
DIFFUSERS_VERSION = "0.42.1"  # the version diffusers_steps.py transcribes
NUM_TRAIN_TIMESTEPS = 1000
NUM_INFERENCE_STEPS = 10
TIMESTEP = 700  # its previous timestep, at 10 of 1000 steps, is 600
PREVIOUS_TIMESTEP = 600
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
# (scheduler, prediction type, eta for DDIM or variance type for DDPM): 15 cases
CASES = ([("ddim", prediction_type, eta) for prediction_type in PREDICTION_TYPES
          for eta in (0.0, 0.5, 1.0)]
         + [("ddpm", prediction_type, variance_type) for prediction_type in PREDICTION_TYPES
            for variance_type in ("fixed_small", "fixed_large")])


def case_name(case):
    return "-".join(str(part) for part in case)


def inputs():
    """The model output, the sample and the DDIM noise that every case steps from."""
    rng = np.random.default_rng(0)
    model_output, sample, noise = (rng.normal(size=(2, 3, 4, 4)) for _ in range(3))
    return {"model_output": model_output, "sample": sample, "noise": noise}


def run_diffusers():
    """Every case through the installed diffusers; a dict of float64 arrays, keyed
    `<case>/<name>` for the outputs and by name for the shared inputs."""
    import diffusers
    import torch

    if diffusers.__version__ != DIFFUSERS_VERSION:
        raise RuntimeError(f"diffusers {diffusers.__version__} is installed; diffusers_steps.py "
                           f"transcribes {DIFFUSERS_VERSION}: install that version.")
    arrays = inputs()
    model_output, sample = (torch.from_numpy(arrays[name]) for name in ("model_output", "sample"))
    for case in CASES:
        kind, prediction_type, option = case
        if kind == "ddim":
            scheduler = diffusers.DDIMScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS,
                                                clip_sample=False,
                                                prediction_type=prediction_type)
            scheduler.set_timesteps(NUM_INFERENCE_STEPS)
            scheduler.alphas_cumprod = scheduler.alphas_cumprod.double()
            noise = arrays["noise"]
            output = scheduler.step(model_output, TIMESTEP, sample, eta=option,
                                    variance_noise=torch.from_numpy(noise))
        else:
            scheduler = diffusers.DDPMScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS,
                                                clip_sample=False,
                                                prediction_type=prediction_type,
                                                variance_type=option)
            scheduler.set_timesteps(NUM_INFERENCE_STEPS)
            scheduler.alphas_cumprod = scheduler.alphas_cumprod.double()
            scheduler.one = scheduler.one.double()
            output = scheduler.step(model_output, TIMESTEP, sample,
                                    generator=torch.Generator().manual_seed(0))
            # the noise that DDPMScheduler drew: the same generator, seed and shape
            noise = diffusers.utils.torch_utils.randn_tensor(
                sample.shape, generator=torch.Generator().manual_seed(0),
                dtype=torch.float64).numpy()
        name = case_name(case)
        arrays[f"{name}/noise"] = noise
        arrays[f"{name}/prev_sample"] = output.prev_sample.numpy()
        arrays[f"{name}/pred_original_sample"] = output.pred_original_sample.numpy()
    # the same ᾱ table for every case (the default linear betas)
    arrays["alphas_cumprod"] = scheduler.alphas_cumprod.numpy()
    return arrays


def transcription(arrays, case):
    """The same case through diffusers_steps.py: (prev_sample, pred_original_sample)."""
    import diffusers_steps

    kind, prediction_type, option = case
    alphas_cumprod = arrays["alphas_cumprod"]
    step = (functools.partial(diffusers_steps.ddim_step, eta=option) if kind == "ddim" else
            functools.partial(diffusers_steps.ddpm_step, variance_type=option))
    return step(arrays["model_output"], arrays["sample"], alphas_cumprod[TIMESTEP],
                alphas_cumprod[PREVIOUS_TIMESTEP],
                variance_noise=arrays[f"{case_name(case)}/noise"], prediction_type=prediction_type)


if __name__ == "__main__":
    DIFFUSERS_OUTPUTS.parent.mkdir(exist_ok=True)
    np.savez_compressed(DIFFUSERS_OUTPUTS, **run_diffusers())
    print(f"wrote {DIFFUSERS_OUTPUTS}")
