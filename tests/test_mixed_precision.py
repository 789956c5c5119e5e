"""Mixed precision: float16 compute in the networks, float32 weights, inputs, outputs and loss.

"auto" turns it on only on a GPU, so here it is forced on; TensorFlow runs float16 on a CPU too,
slowly. The float32 network is the independent reference for the float16 one.
"""

import keras
import numpy as np
import pytest

from autograder.assignment.solution import SolutionDiffusionModel
from diffusion_course.checkpoints import load_checkpoint, save_checkpoint
from diffusion_course.config import DDIMConfig, DDPMConfig
from diffusion_course.ddpm import DDPMModel
from diffusion_course.devices import network_dtype_policy, with_loss_scaling
from diffusion_course.networks.embeddings import SinusoidalEmbedding
from diffusion_course.training_state import TRAINING_STATE_PART, TrainingState

FLOAT32_LAYERS = (SinusoidalEmbedding,)  # angles up to 2*pi*1000 need float32


def ddim_model(mixed_precision):
    return SolutionDiffusionModel(
        DDIMConfig.from_profile("quick", mixed_precision=mixed_precision), seed=0)


def ddpm_model(mixed_precision):
    return DDPMModel(DDPMConfig.from_profile("quick", mixed_precision=mixed_precision), seed=0)


MODELS = {"ddim": ddim_model, "ddpm": ddpm_model}


def smooth_images(count, size, seed=0):
    rng = np.random.default_rng(seed)
    coarse = rng.random((count, 2, 2, 3))
    return np.kron(coarse, np.ones((1, size // 2, size // 2, 1))).astype("float32")


def network_inputs(model, seed=0):
    """Random noisy images with their noise variances (DDIM) or timesteps (DDPM)."""
    rng = np.random.default_rng(seed)
    size = model.config.image_size
    images = rng.standard_normal((8, size, size, 3)).astype("float32")
    if isinstance(model, DDPMModel):
        return [images, rng.integers(0, model.config.timesteps, 8).astype("int32")]
    return [images, rng.random((8, 1, 1, 1)).astype("float32")]


def test_auto_means_float32_without_a_gpu():
    assert network_dtype_policy("auto") == "float32"
    assert (network_dtype_policy(True), network_dtype_policy(False)) == ("mixed_float16",
                                                                         "float32")


@pytest.mark.parametrize("name", MODELS)
def test_only_the_networks_compute_in_float16(name):
    model = MODELS[name](True)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    for network in (model.network, model.ema_network):
        policies = {layer.dtype_policy.name for layer in network.layers
                    if not isinstance(layer, (keras.layers.InputLayer, *FLOAT32_LAYERS))}
        assert "mixed_float16" in policies
        assert network.layers[-1].dtype_policy.name == "float32"  # the predicted noise
        assert all(weight.dtype == "float32" for weight in network.weights)
        assert all(layer.compute_dtype == "float32" for layer in network.layers
                   if isinstance(layer, FLOAT32_LAYERS))
    model.compile()
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


@pytest.mark.parametrize("name", MODELS)
def test_float32_models_keep_a_plain_optimizer(name):
    model = MODELS[name](False)
    model.compile()
    assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    adam = keras.optimizers.Adam()
    assert with_loss_scaling(adam, model.network) is adam


@pytest.mark.parametrize("name", MODELS)
def test_the_float16_network_predicts_what_the_float32_one_does(name):
    reference, mixed = MODELS[name](False), MODELS[name](True)
    # the output layers start at zero; random weights there make the comparison meaningful
    rng = np.random.default_rng(1)
    weights = [rng.normal(0.0, 0.05, w.shape).astype("float32") if not np.any(w) else w
               for w in reference.network.get_weights()]
    reference.network.set_weights(weights)
    mixed.network.set_weights(weights)
    inputs = network_inputs(reference)
    expected = np.asarray(reference.network(inputs, training=False))
    predicted = mixed.network(inputs, training=False)
    assert predicted.dtype == "float32"
    error = np.abs(np.asarray(predicted) - expected).max()
    # float16 keeps ~3 significant digits; a float16 embedding would be off by O(1)
    assert error < 0.02 * np.abs(expected).max(), error


def test_mixed_precision_training_learns():
    model = ddim_model(True)
    images = smooth_images(64, model.config.image_size)
    model.adapt_normalizer(images)
    model.compile()
    history = model.fit(images, batch_size=16, epochs=3, verbose=0, shuffle=False)
    losses = history.history["n_loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.9 * losses[0]


def test_a_mixed_precision_ddpm_step_is_finite_and_moves_the_weights():
    model = ddpm_model(True)
    model.compile()
    before = model.network.get_weights()
    images = smooth_images(16, model.config.image_size) * 2 - 1
    loss = model.train_on_batch(images, return_dict=True)["loss"]
    assert np.isfinite(loss)
    after = model.network.get_weights()
    assert all(np.all(np.isfinite(weights)) for weights in after)
    assert any(np.any(old != new) for old, new in zip(before, after))


def test_a_mixed_precision_checkpoint_loads_into_a_float32_model(tmp_path):
    mixed = ddim_model(True)
    mixed.adapt_normalizer(smooth_images(32, mixed.config.image_size))
    mixed.compile()
    mixed.fit(smooth_images(32, mixed.config.image_size), batch_size=16, epochs=1, verbose=0)
    save_checkpoint(tmp_path / "mixed", mixed.checkpoint_parts(), mixed.config, step=2, seed=0)

    plain = ddim_model(False)
    load_checkpoint(tmp_path / "mixed", plain.checkpoint_parts(), plain.config)
    for part in ("network", "ema_network", "normalizer"):
        for saved, loaded in zip(mixed.checkpoint_parts()[part].get_weights(),
                                 plain.checkpoint_parts()[part].get_weights()):
            np.testing.assert_array_equal(saved, loaded)


def test_a_mixed_precision_run_resumes_with_its_loss_scale(tmp_path):
    """The loss scale is optimizer state: a resumed run continues exactly where it stopped."""
    config = DDIMConfig.from_profile("quick", mixed_precision=True)
    images = smooth_images(32, config.image_size)
    first = SolutionDiffusionModel(config, seed=0)
    first.adapt_normalizer(images)
    first.compile()
    first.fit(images, batch_size=16, epochs=1, verbose=0, shuffle=False)
    save_checkpoint(tmp_path / "last", {**first.checkpoint_parts(),
                                        TRAINING_STATE_PART: TrainingState(first)},
                    config, step=2, seed=0)

    resumed = SolutionDiffusionModel(config, seed=1)
    resumed.compile()
    load_checkpoint(tmp_path / "last", {**resumed.checkpoint_parts(),
                                        TRAINING_STATE_PART: TrainingState(resumed)}, config)
    assert "dynamic_scale" in {variable.name for variable in resumed.optimizer.variables}
    losses = [model.fit(images, batch_size=16, epochs=1, verbose=0, shuffle=False)
              .history["n_loss"] for model in (first, resumed)]
    assert losses[0] == losses[1]
    for expected, weights in zip(first.network.get_weights(), resumed.network.get_weights()):
        np.testing.assert_array_equal(weights, expected)
