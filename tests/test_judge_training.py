"""The training verdict fails for real reasons: an untrained model, a run stopped early, a mistake
that no probe sees; and training is deterministic from cold caches. The shared fixtures are in
judging.py."""

import dataclasses

import numpy as np
import pytest

from autograder.assignment.solution import setup_source, solution_sources
from autograder.grader_state.evaluation import Evaluator
from autograder.judge import _Session, _TrainingRuns, as_program
from autograder.verdicts import TEST_CELLS, TRAINING_TEST_CELL
from autograder.verdicts.training import judge_training, training_setup
from diffusion_course.config import DDIMConfig

# ---- the training verdict fails for real reasons --------------------------------------------

# a mistake that no probe sees (they compare values, and stop_gradient changes none): the
# network's output is cut from the loss, so the student's own functions train nothing
NO_GRADIENT_DENOISE = solution_sources()["denoise"].replace(
    "pred_noises = network([noisy_images, noise_rates**2], training=training)",
    "pred_noises = ops.stop_gradient(network([noisy_images, noise_rates**2], "
    "training=training))")


def measured_runs(cache_dir, steps):
    """The metrics of the reference trained `steps` steps and of the untrained model, measured
    as a grading measures them (a real sandboxed run), with the quick budget otherwise."""
    training_config, budget = training_setup(DDIMConfig.from_profile("quick"))
    with _Session(None) as session:
        evaluator = Evaluator(training_config, dataclasses.replace(budget, steps=steps), 0,
                              cache_dir)
        metrics = _TrainingRuns(session, evaluator).metrics(
            setup_source(), {name: as_program(name, source)
                             for name, source in solution_sources().items()}, "the reference")
        return metrics, evaluator.untrained_metrics()


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """The reference stopped after 5 of its steps, trained twice with cold caches."""
    return [measured_runs(tmp_path_factory.mktemp("cold-cache"), steps=5) for _ in range(2)]


def test_training_is_deterministic_from_cold_caches(stopped_run):
    (first, first_untrained), (second, second_untrained) = stopped_run
    assert first == second and first_untrained == second_untrained


def test_the_training_verdict_fails_an_untrained_model_and_a_stopped_run(grade_submission,
                                                                        stopped_run):
    _, budget = training_setup(DDIMConfig.from_profile("quick"))
    reference, untrained = measured_runs(grade_submission.cache_dir, budget.steps)
    stopped, _ = stopped_run[0]
    # independent of the code: a network that predicts ~0 has E|ε| = √(2/π) for ε ~ N(0, 1)
    assert untrained["noise_mae"] == pytest.approx(np.sqrt(2 / np.pi), abs=0.02)
    assert judge_training(reference, reference, untrained, budget, "the reference").passed
    for metrics in (untrained, stopped):
        verdict = judge_training(metrics, reference, untrained, budget, "your functions")
        assert not verdict.passed and verdict.score_fraction == 0.0
        assert "the noise MAE should be below" in verdict.message
        assert "the KID should be within" in verdict.message
    # stopped after 40 of its 150 steps: its noise MAE already passes (measured 0.45), its KID
    # (8.1 against the reference's 0.85) does not
    short, _ = measured_runs(grade_submission.cache_dir, steps=40)
    assert short["noise_mae"] < budget.max_noise_mae
    verdict = judge_training(short, reference, untrained, budget, "your functions")
    assert not verdict.passed and "the KID should be within" in verdict.message
    assert "the noise MAE should be below" not in verdict.message


def test_a_mistake_no_probe_sees_fails_the_training_of_the_students_own_functions(
        grade_submission):
    verdicts = grade_submission({**solution_sources(), "denoise": NO_GRADIENT_DENOISE})
    assert all(verdicts[cell].passed for cell in TEST_CELLS.values())  # so it trains them
    training = verdicts[TRAINING_TEST_CELL]
    assert not training.passed
    assert "training with your functions raised ValueError" in training.message
    assert "No gradients provided" in training.message


# rounds the times to 10 discrete steps, as DDPM's discrete timesteps would: it equals the
# reference on every tenth of the time axis, and its 150-step training run measured about as
# well as the reference's (KID 0.78 against 0.85, noise MAE 0.311 against 0.281), so the training
# verdict's margins let it through; only probe times between the tenths catch it
DISCRETE_SCHEDULE = solution_sources()["diffusion_schedule"].replace(
    'diffusion_times = ops.cast(diffusion_times, "float32")',
    'diffusion_times = ops.round(ops.cast(diffusion_times, "float32") * 10) / 10')


def test_a_schedule_right_only_on_the_tenths_fails_its_test(grade_submission):
    assert DISCRETE_SCHEDULE != solution_sources()["diffusion_schedule"]
    verdicts = grade_submission({**solution_sources(), "diffusion_schedule": DISCRETE_SCHEDULE})
    schedule = verdicts["test_diffusion_schedule"]
    assert not schedule.passed and "should follow the cosine schedule" in schedule.message
    assert verdicts["test_denoise"].passed and verdicts["test_reverse_diffusion"].passed


# ---- the measurement measures the model that was trained ------------------------------------

def test_loaded_weights_are_measured_as_the_model_they_came_from(tmp_path):
    """The weights a runner sends, normaliser statistics included, measure exactly as the model
    they came from, and one evaluator measures two runs as two fresh ones would (it loads every
    run into the same model)."""
    import keras

    from autograder.assignment.solution import SolutionDiffusionModel
    from diffusion_course.synthetic import synthetic_flowers

    config, budget = training_setup(DDIMConfig.from_profile("quick"))
    models = []
    for seed, scale in ((1, 1.0), (2, 0.5)):  # two runs whose normalisers differ
        keras.utils.set_random_seed(seed)
        model = SolutionDiffusionModel(config, seed=seed)
        model.adapt_normalizer(synthetic_flowers(64, config.image_size, seed) * scale)
        models.append(model)
    weights = [{part: [np.asarray(array) for array in network.get_weights()]
                for part, network in model.checkpoint_parts().items()} for model in models]
    measured_as_sent = [Evaluator(config, budget, 0, tmp_path).metrics(model) for model in models]
    assert measured_as_sent[0] != measured_as_sent[1]
    one_evaluator = Evaluator(config, budget, 0, tmp_path)
    one_evaluator.prepare_in_background()
    assert [one_evaluator.weights_metrics(sent) for sent in weights] == measured_as_sent
    one_evaluator.finish_preparing()
