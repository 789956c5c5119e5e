"""Assignment variants: each variant's solution passes its own hidden tests, last term's (the
default's) loses exactly the points of the functions that the variant changes, and the feedback
says what is wrong in this term's terms.

The formulas are checked against closed forms written here in numpy; the grading runs at the
judge level with one grader cache for the module: one reference training run per graded
variant (two), which the default solution's grading reuses.
"""

import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
from keras import ops

from autograder.__main__ import main
from autograder.assignment.solution import setup_source, solution_functions
from autograder.assignment.variant_solutions import changed_functions, variant_solution_sources
from autograder.bundle import no_answers, variant
from autograder.bundle.build import build_bundle
from autograder.bundle.parts import STUDENT
from autograder.judge import grade
from autograder.verdicts import TEST_CELLS, TRAINING_TEST_CELL
from diffusion_course import selfcheck
from diffusion_course.config import DDIMConfig
from diffusion_course.variants import (
    DEFAULT_VARIANT,
    FAMILIES,
    VARIANTS,
    UnknownVariant,
    assignment_config,
)
from diffusion_course.variants import variant as variant_named

POINTS = {TEST_CELLS["diffusion_schedule"]: 3, TEST_CELLS["denoise"]: 3,
          TEST_CELLS["reverse_diffusion"]: 4, TRAINING_TEST_CELL: 5}
GRADED_VARIANTS = ("log-snr-velocity", "log-signal-noise")
TIMES = np.linspace(0.0, 1.0, 21).reshape(-1, 1, 1, 1)


def closed_form_rates(family, t, min_rate, max_rate):
    """(noise, signal) rates of each family, from its definition (float64)."""
    if family == "assignment-cosine":
        angles = np.arccos(max_rate) + t * (np.arccos(min_rate) - np.arccos(max_rate))
        return np.sin(angles), np.cos(angles)
    if family == "linear":
        noise_powers = (1 - max_rate**2) + t * (max_rate**2 - min_rate**2)
    elif family == "log-snr-linear":
        start, end = (np.log(rate**2 / (1 - rate**2)) for rate in (max_rate, min_rate))
        noise_powers = 1 / (1 + np.exp(start + t * (end - start)))
    elif family == "log-signal-linear":
        noise_powers = 1 - max_rate**2 * (min_rate**2 / max_rate**2) ** t
    return np.sqrt(noise_powers), np.sqrt(1 - noise_powers)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_variants_schedule_is_its_closed_form(name):
    config = assignment_config("quick", name)
    for bounds in ((config.min_signal_rate, config.max_signal_rate), (0.1, 0.8)):
        rates = solution_functions(config)["diffusion_schedule"](
            _holder(config.replace(min_signal_rate=bounds[0], max_signal_rate=bounds[1])),
            ops.convert_to_tensor(TIMES.astype("float32")))
        expected = closed_form_rates(config.schedule, TIMES, *bounds)
        for value, closed_form in zip(rates, expected):
            np.testing.assert_allclose(np.asarray(value), closed_form, atol=2e-6)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_variants_denoise_recovers_image_and_noise_from_its_target(name):
    config = assignment_config("quick", name)
    rng = np.random.default_rng(0)
    images, noises = rng.standard_normal((2, 4, 8, 8, 3))
    noise_rates = np.array([0.1, 0.4, 0.7, 0.99]).reshape(-1, 1, 1, 1)
    signal_rates = np.sqrt(1 - noise_rates**2)
    targets = {"noise": noises, "image": images,
               "velocity": signal_rates * noises - noise_rates * images}  # Salimans & Ho, sec. 4
    network = ConstantNetwork(targets[config.prediction])
    model = _holder(config, network=network, ema_network=network)
    pred_noises, pred_images = solution_functions(config)["denoise"](
        model, *(ops.convert_to_tensor(value.astype("float32")) for value in
                 (signal_rates * images + noise_rates * noises, noise_rates, signal_rates)),
        training=False)
    np.testing.assert_allclose(np.asarray(pred_noises), noises, atol=1e-4)
    np.testing.assert_allclose(np.asarray(pred_images), images, atol=1e-4)


def test_the_default_variant_is_todays_assignment():
    assert assignment_config("quick", DEFAULT_VARIANT) == DDIMConfig.from_profile("quick")
    assert assignment_config("quick") == DDIMConfig.from_profile("quick")
    assert variant_solution_sources(DEFAULT_VARIANT) == variant_solution_sources()
    assert changed_functions(DEFAULT_VARIANT) == ()
    # every other variant changes at least one answer, or it would not stop a copied solution
    assert all(changed_functions(name) for name in VARIANTS if name != DEFAULT_VARIANT)


def test_the_bundle_carries_the_variant_and_grading_records_it(tmp_path, capsys):
    built = build_bundle(STUDENT, tmp_path / "student", variant_name="linear-image")
    (wheel,) = (built / "wheels").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        setting = archive.read(variant.SETTING).decode()
    assert "COURSE_VARIANT = 'linear-image'" in setting
    assert not no_answers.find_answers(built)
    repo = tmp_path / "repo"
    variant.write_setting(DEFAULT_VARIANT, repo)
    assert variant.record("linear-image", repo) and not variant.record("linear-image", repo)
    assert setting == (repo / variant.SETTING).read_text()
    # a non-empty --out is refused before the variant's solution is graded
    status = main(["bundle", "--variant", "linear-image", "--out", str(tmp_path)])
    assert status == 2 and "is not empty" in capsys.readouterr().err


def test_an_unknown_variant_is_refused_with_the_valid_ones(tmp_path, capsys):
    with pytest.raises(UnknownVariant, match="log-snr-velocity, log-signal-noise"):
        variant_named("cosine-velocity")
    status = main(["bundle", "--variant", "cosine-velocity", "--out", str(tmp_path)])
    assert status == 2
    error = capsys.readouterr().err
    assert "'cosine-velocity' is not a variant" in error
    assert all(name in error for name in VARIANTS)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("name", GRADED_VARIANTS)
def test_the_self_checks_follow_the_variant(name):
    config = assignment_config("quick", name)
    own = solution_functions(config)
    last_term = solution_functions(assignment_config("quick", DEFAULT_VARIANT))
    assert selfcheck.check_diffusion_schedule(own["diffusion_schedule"], config)
    assert selfcheck.check_denoise(own["denoise"], config)
    assert selfcheck.check_reverse_diffusion(own["reverse_diffusion"], own["diffusion_schedule"],
                                             own["denoise"], config)
    with pytest.raises(selfcheck.SelfCheckError, match="should change linearly with t"):
        selfcheck.check_diffusion_schedule(last_term["diffusion_schedule"], config)
    if "denoise" in changed_functions(name):
        with pytest.raises(selfcheck.SelfCheckError, match="this term the network predicts"):
            selfcheck.check_denoise(last_term["denoise"], config)


@pytest.fixture(scope="module")
def grade_in(tmp_path_factory):
    """Grades {function name: source} under a variant, with one cache for the module; a
    grading asked for twice is run once (`grade_it.judge` serves the same as judge.grade)."""
    cache_dir = tmp_path_factory.mktemp("grader-cache")
    gradings = {}

    def judge(functions, preamble, config, cache_dir=cache_dir):
        key = (tuple(sorted(functions.items())), preamble, config)
        if key not in gradings:
            gradings[key] = grade(functions, preamble, config=config, cache_dir=cache_dir)
        return gradings[key]

    def grade_it(functions, name):
        return judge(functions, setup_source(), assignment_config("quick", name))

    grade_it.judge = judge
    grade_it.cache_dir = cache_dir
    return grade_it


@pytest.mark.parametrize("name", GRADED_VARIANTS)
def test_a_variants_own_solution_gets_full_marks(grade_in, name):
    verdicts = grade_in(variant_solution_sources(name), name)
    for cell, verdict in verdicts.items():
        assert verdict.passed and verdict.score_fraction == 1.0, (cell, verdict.message)


@pytest.mark.parametrize("name", GRADED_VARIANTS)
def test_last_terms_solution_loses_the_changed_functions_points_only(grade_in, name):
    verdicts = grade_in(variant_solution_sources(DEFAULT_VARIANT), name)
    changed = {TEST_CELLS[function] for function in changed_functions(name)}
    lost = {cell for cell, verdict in verdicts.items() if not verdict.passed}
    assert lost == changed
    assert sum(POINTS[cell] for cell in POINTS if cell not in lost) \
        == 15 - sum(POINTS[cell] for cell in changed)
    family = assignment_config("quick", name)
    feedback = "\n".join(verdict.message for verdict in verdicts.values())
    assert "cop" not in feedback.lower()  # never "you copied": what is wrong, in this term's terms
    schedule = verdicts[TEST_CELLS["diffusion_schedule"]].message
    assert f"should follow the {_family_title(family)} schedule (this term's: " in schedule
    if "denoise" in changed_functions(name):
        message = verdicts[TEST_CELLS["denoise"]].message
        assert "should predict the velocity with self.network" in message
        assert "with a network that returns the velocity exactly" in message
    else:
        assert verdicts[TEST_CELLS["denoise"]].passed


def test_a_variant_whose_solution_fails_is_refused_with_its_verdicts(grade_in, monkeypatch):
    """As if the variant's solution were last term's: the bundle refuses, and shows why (the
    grading is the one of the test above, run once)."""
    import autograder.assignment.variant_solutions
    import autograder.judge

    monkeypatch.setattr(autograder.assignment.variant_solutions, "variant_solution_sources",
                        lambda name=None: variant_solution_sources(DEFAULT_VARIANT))
    monkeypatch.setattr(autograder.judge, "grade", grade_in.judge)
    with pytest.raises(variant.VariantError) as refused:
        variant.check_solution("log-snr-velocity", cache_dir=grade_in.cache_dir)
    message = str(refused.value)
    assert "'log-snr-velocity' fails its own hidden tests" in message
    assert f"{TEST_CELLS['diffusion_schedule']}: diffusion_schedule:" in message
    assert f"{TEST_CELLS['denoise']}: denoise:" in message
    assert TEST_CELLS["reverse_diffusion"] not in message


def _family_title(config):
    return FAMILIES[config.schedule].title


class ConstantNetwork:
    """Stands in for a network that returns a fixed output (the true target)."""

    def __init__(self, output):
        self.output = output

    def __call__(self, inputs, training=False):
        return ops.convert_to_tensor(self.output.astype("float32"))


def _holder(config, network=None, ema_network=None):
    return SimpleNamespace(config=config, network=network, ema_network=ema_network)
