"""The trainable DDIM and DDPM models: scalar losses, EMA behaviour, and both Keras backends."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from autograder.assignment.solution import SolutionDiffusionModel
from diffusion_course.config import DDIMConfig, DDPMConfig
from diffusion_course.ddpm import DDPMModel

REPO_ROOT = Path(__file__).resolve().parents[1]
UNLEARNED_NOISE_MAE = np.sqrt(2 / np.pi)  # E|ε| for ε ~ N(0, 1): the loss of predicting zero


def smooth_images(count, size, seed=0):
    """Images with structure (low-frequency colour fields) that a tiny network can learn."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((count, 2, 2, 3))
    return np.kron(coarse, np.ones((1, size // 2, size // 2, 1))).astype("float32")


def test_ddim_loss_is_a_scalar_mae_that_starts_at_the_unlearned_value():
    config = DDIMConfig.from_profile("quick")
    model = SolutionDiffusionModel(config, seed=0)
    images = smooth_images(64, config.image_size)
    model.adapt_normalizer(images)
    outputs = model(images, training=False)
    loss = model.compute_loss(y_pred=outputs)
    assert tuple(loss.shape) == ()
    np.testing.assert_allclose(float(loss), UNLEARNED_NOISE_MAE, rtol=0.05)


def test_ddim_training_learns_and_the_ema_follows():
    config = DDIMConfig.from_profile("quick")
    model = SolutionDiffusionModel(config.replace(ema=0.9), seed=0)
    images = smooth_images(256, config.image_size)
    model.adapt_normalizer(images)
    model.compile()
    initial_weights = [np.asarray(weight) for weight in model.network.weights]
    history = model.fit(images, batch_size=config.batch_size, epochs=4, verbose=0, shuffle=False)
    assert history.history["n_loss"][-1] < 0.9 * UNLEARNED_NOISE_MAE
    trainable = [index for index, weight in enumerate(model.network.weights) if weight.trainable]
    network = [np.asarray(model.network.weights[index]) for index in trainable]
    ema = [np.asarray(model.ema_network.weights[index]) for index in trainable]
    initial = [initial_weights[index] for index in trainable]

    def distance(weights, others):
        return np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(weights, others)))

    # at decay 0.9 the EMA forgets its start within tens of steps: it is far nearer the trained
    # network than the untrained weights are (0.14 as far, measured), yet lags behind it
    assert distance(ema, network) < 0.5 * distance(initial, network)
    assert distance(ema, network) > 0
    samples = np.asarray(model.generate(4, diffusion_steps=3, seed=1))
    assert samples.shape == (4, config.image_size, config.image_size, 3)
    assert samples.min() >= 0 and samples.max() <= 1


def test_ddpm_training_reduces_the_mse():
    config = DDPMConfig.from_profile("quick")
    model = DDPMModel(config, seed=0)
    model.compile()
    images = smooth_images(128, config.image_size) * 2 - 1
    history = model.fit(images, batch_size=config.batch_size, epochs=3, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert losses[-1] < 0.8 * losses[0]


JAX_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "jax"
    import numpy as np, keras
    from autograder.assignment.solution import SolutionDiffusionModel
    from diffusion_course.config import DDIMConfig, DDPMConfig
    from diffusion_course.ddpm import DDPMModel
    keras.utils.set_random_seed(0)
    images = np.random.default_rng(0).random((32, 16, 16, 3)).astype("float32")
    ddim = SolutionDiffusionModel(DDIMConfig.from_profile("quick"), seed=0)
    ddim.adapt_normalizer(images)
    ddim.compile()
    ddim_loss = ddim.fit(images, batch_size=16, epochs=1, verbose=0, shuffle=False)
    samples = ddim.generate(2, 3, seed=0)
    ddpm = DDPMModel(DDPMConfig.from_profile("quick"), seed=0)
    ddpm.compile()
    ddpm_loss = ddpm.fit(images * 2 - 1, batch_size=16, epochs=1, verbose=0, shuffle=False)
    mixed = SolutionDiffusionModel(DDIMConfig.from_profile("quick", mixed_precision=True), seed=0)
    mixed.adapt_normalizer(images)
    mixed.compile()
    mixed_loss = mixed.fit(images, batch_size=16, epochs=1, verbose=0, shuffle=False)
    print(json.dumps({"backend": keras.backend.backend(),
                      "ddim_loss": ddim_loss.history["n_loss"][-1],
                      "ddpm_loss": ddpm_loss.history["loss"][-1],
                      "samples": list(np.asarray(samples).shape),
                      "mixed_loss": mixed_loss.history["n_loss"][-1],
                      "mixed_optimizer": type(mixed.optimizer).__name__}))
""")


def test_models_train_and_sample_on_the_jax_backend():
    pytest.importorskip("jax")
    environment = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", JAX_SCRIPT], capture_output=True, text=True,
                            env=environment, cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == "jax"
    assert np.isfinite(report["ddim_loss"]) and np.isfinite(report["ddpm_loss"])
    assert report["samples"] == [2, 16, 16, 3]
    # mixed precision (float16 networks, loss scaling) trains under JAX too, as on a GPU
    assert np.isfinite(report["mixed_loss"])
    assert report["mixed_optimizer"] == "LossScaleOptimizer"


def test_keras_is_on_the_tensorflow_backend_here():
    assert keras.backend.backend() == "tensorflow"


@pytest.mark.parametrize("kind", ["ddim", "ddpm"])
def test_the_first_train_step_creates_no_variables_so_it_is_traced_once(kind):
    """TensorFlow traces a tf.function that creates variables twice: the optimizer's moments
    are made at compile time, not in the first train step (1.4 s of a CPU run's start)."""
    import tensorflow as tf

    if kind == "ddim":
        config = DDIMConfig.from_profile("quick", batch_size=4)
        model = SolutionDiffusionModel(config, seed=0)
        images = smooth_images(4, config.image_size)
        model.adapt_normalizer(images)
    else:
        config = DDPMConfig.from_profile("quick", batch_size=4)
        model = DDPMModel(config, seed=0)
        images = smooth_images(4, config.image_size)
    model.compile()
    created_in_a_step = []

    def record(next_creator, **kwargs):
        if tf.inside_function():
            created_in_a_step.append(kwargs.get("name"))
        return next_creator(**kwargs)

    with tf.variable_creator_scope(record):
        model.fit(images, batch_size=4, epochs=1, verbose=0)
    assert created_in_a_step == []
