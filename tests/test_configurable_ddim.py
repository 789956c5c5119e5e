"""The library's DDIM model: it agrees with the instructor's solution, trains with any loss
weighting, round-trips its design through a checkpoint, and leaves graded runs working."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from autograder.assignment.solution import SolutionDiffusionModel, solution_diffusion_schedule
from diffusion_course.checkpoints import save_checkpoint
from diffusion_course.config import ConfigError, DDIMConfig
from diffusion_course.configurable_ddim import ConfigurableDiffusionModel
from diffusion_course.models import load_model
from diffusion_course.schedules import make_schedule

REPO_ROOT = Path(__file__).resolve().parents[1]
QUICK = DDIMConfig.from_profile("quick")
TIMES = np.linspace(0.0, 1.0, 101, dtype="float32").reshape(-1, 1, 1, 1)


@pytest.mark.parametrize("bounds", [(0.02, 0.95), (0.1, 0.8)])
def test_the_library_schedule_is_the_instructors(bounds):
    expected = solution_diffusion_schedule(TIMES, *bounds)
    found = make_schedule("assignment-cosine", min_signal_rate=bounds[0],
                          max_signal_rate=bounds[1]).rates(TIMES)
    for found_rates, expected_rates in zip(found, expected):
        assert found_rates.dtype == expected_rates.dtype
        np.testing.assert_allclose(np.asarray(found_rates), np.asarray(expected_rates),
                                   atol=1e-6)


@pytest.fixture(scope="module")
def twin_models():
    """The instructor's model and the library's, with the same jittered weights (the U-Net's
    last layer starts at zero, which would make every prediction trivially zero)."""
    reference = SolutionDiffusionModel(QUICK, seed=0)
    library = ConfigurableDiffusionModel(QUICK, seed=0)
    rng = np.random.default_rng(0)
    for network in ("network", "ema_network"):
        weights = [weight + rng.normal(0.0, 0.05, weight.shape)
                   for weight in getattr(reference, network).get_weights()]
        getattr(reference, network).set_weights(weights)
        getattr(library, network).set_weights(weights)
    return reference, library


@pytest.mark.parametrize("training", [True, False])
def test_the_library_denoise_is_the_instructors(twin_models, training):
    reference, library = twin_models
    rng = np.random.default_rng(1)
    noisy_images = ops.convert_to_tensor(
        rng.normal(size=(4, QUICK.image_size, QUICK.image_size, 3)), "float32")
    noise_rates, signal_rates = reference.diffusion_schedule(TIMES[[5, 40, 80, 100]])
    expected = reference.denoise(noisy_images, noise_rates, signal_rates, training=training)
    found = library.denoise(noisy_images, noise_rates, signal_rates, training=training)
    assert np.abs(np.asarray(expected[0])).mean() > 0.1  # not trivially zero
    for found_part, expected_part in zip(found, expected):
        np.testing.assert_allclose(np.asarray(found_part), np.asarray(expected_part),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("diffusion_steps", [1, 5])
def test_the_library_sampler_is_the_instructors_reverse_diffusion(twin_models, diffusion_steps):
    """The solution's Python loop, eager, against the library's compiled DDIM loop."""
    reference, library = twin_models
    initial_noise = ops.convert_to_tensor(np.random.default_rng(2).normal(
        size=(3, QUICK.image_size, QUICK.image_size, 3)), "float32")
    expected = np.asarray(reference.reverse_diffusion(initial_noise, diffusion_steps))
    found = library.reverse_diffusion(initial_noise, diffusion_steps)
    # float32 differences (XLA against eager) grow with the division by the small signal rates
    np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def _errors(y_pred, loss):
    """The mean noise, image and velocity errors of one forward pass, in float64 numpy."""
    outputs = {name: np.asarray(value, np.float64) for name, value in y_pred.items()}
    noise_rates, signal_rates = outputs["noise_rates"], outputs["signal_rates"]
    noise_errors = outputs["noises"] - outputs["pred_noises"]
    image_errors = outputs["images"] - outputs["pred_images"]
    errors = {"noise": noise_errors, "image": image_errors,
              # v = s·ε − n·x0 (Salimans & Ho 2022, section 4), and so for its error
              "velocity": signal_rates * noise_errors - noise_rates * image_errors}
    power = {"mae": 1, "mse": 2}[loss]
    return {kind: np.mean(np.abs(error) ** power) for kind, error in errors.items()}


@pytest.mark.parametrize("prediction, loss_weighting, loss", [
    ("noise", "noise", "mae"), ("velocity", "image", "mse"), ("image", "velocity", "mae")])
def test_training_minimises_the_configured_error_and_tracks_all_three(prediction,
                                                                       loss_weighting, loss):
    config = QUICK.replace(prediction=prediction, loss_weighting=loss_weighting, loss=loss)
    model = ConfigurableDiffusionModel(config, seed=0)
    images = np.random.default_rng(3).random((8, 16, 16, 3)).astype("float32")
    model.adapt_normalizer(images)
    y_pred = model(images, training=False)
    expected = _errors(y_pred, loss)
    value = model.compute_loss(y_pred=y_pred)
    assert tuple(value.shape) == ()
    np.testing.assert_allclose(float(value), expected[loss_weighting], rtol=1e-5)
    for kind, name in (("noise", "n_loss"), ("image", "i_loss"), ("velocity", "v_loss")):
        tracker = next(metric for metric in model.metrics if metric.name == name)
        np.testing.assert_allclose(float(tracker.result()), expected[kind], rtol=1e-5)

    # real training steps: fit draws its noise and times from the model's seed generator, so
    # resetting the generator replays fit's first draw before and after the steps
    seed_state = np.asarray(model.seed_generator.state.value)
    before = _errors(model(images, training=True), loss)
    model.seed_generator.state.assign(seed_state)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), jit_compile=False)
    history = model.fit(images, batch_size=8, epochs=1, shuffle=False, verbose=0)
    model.seed_generator.state.assign(seed_state)
    after = _errors(model(images, training=True), loss)
    # the step's loss is the configured error of that draw, and the step lowered it
    np.testing.assert_allclose(history.history["loss"][0], before[loss_weighting], rtol=1e-4)
    assert after[loss_weighting] < before[loss_weighting]


def test_the_assignment_model_refuses_designs_its_functions_do_not_implement():
    with pytest.raises(ConfigError, match="library's model"):
        SolutionDiffusionModel(QUICK.replace(prediction="velocity"), seed=0)
    with pytest.raises(ConfigError, match="assignment-cosine"):
        SolutionDiffusionModel(QUICK.replace(schedule="cosine"), seed=0)


def test_a_checkpoint_records_the_design(tmp_path):
    config = QUICK.replace(schedule="log-snr-linear", start_log_snr=3.0, end_log_snr=-6.0,
                           prediction="velocity", loss_weighting="image", loss="mse")
    model = ConfigurableDiffusionModel(config, seed=0)
    model.adapt_normalizer(np.random.default_rng(4).random((4, 16, 16, 3)).astype("float32"))
    save_checkpoint(tmp_path / "checkpoint", model.checkpoint_parts(), config, step=0, seed=0)
    loaded, manifest = load_model(tmp_path / "checkpoint")
    assert manifest["config"]["prediction"] == "velocity"
    assert (loaded.config.schedule, loaded.config.prediction) == ("log-snr-linear", "velocity")
    assert (loaded.schedule.start_log_snr, loaded.schedule.end_log_snr) == (3.0, -6.0)


def test_the_committed_reference_loads_with_the_default_design():
    """Trained with the default design, which its manifest records."""
    model, manifest = load_model(REPO_ROOT / "data" / "checkpoints" / "quick" / "ddim")
    assert manifest["config"]["prediction"] == "noise"
    assert (model.config.schedule, model.config.prediction, model.config.loss_weighting,
            model.config.loss) == ("assignment-cosine", "noise", "noise", "mae")
    images = np.asarray(model.generate(2, diffusion_steps=3, seed=0))
    assert images.shape == (2, 16, 16, 3) and 0 <= images.min() and images.max() <= 1


MASKED_SCRIPT = textwrap.dedent("""
    import sys, types
    # what a graded run sees: the library's schedule, parametrization and sampler modules are
    # empty files
    for name in ("schedules", "parametrizations", "continuous_samplers", "multistep_weights",
                 "configurable_ddim", "sampler_comparison", "design_grid"):
        sys.modules["diffusion_course." + name] = types.ModuleType("diffusion_course." + name)
    import numpy as np
    import diffusion_course.checkpoints, diffusion_course.ddim  # what the graded runner imports
    from autograder.assignment.solution import SolutionDiffusionModel, setup_source
    exec(setup_source(), {})  # the answer cells' imports
    from diffusion_course.config import DDIMConfig
    model = SolutionDiffusionModel(DDIMConfig.from_profile("quick"), seed=0)
    images = np.random.default_rng(0).random((4, 16, 16, 3)).astype("float32")
    model.adapt_normalizer(images)
    loss = model.compute_loss(y_pred=model(images, training=True))
    assert np.isfinite(float(loss))
    try:
        from diffusion_course.configurable_ddim import ConfigurableDiffusionModel
    except ImportError:
        print("masked ok")
""")


def test_graded_runs_work_without_the_library_design_modules():
    """An assignment model imports, and trains, with schedules.py, parametrizations.py and
    continuous_samplers.py masked; the library's own model does not import there."""
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", MASKED_SCRIPT], env=environment,
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "masked ok" in result.stdout
