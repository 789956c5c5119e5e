"""The grader's cache: what a grading finds there, it does not compute again, and a grading that
finds everything there starts no TensorFlow in the trusted process.

A grading's trusted process needs TensorFlow only to measure what is not cached: the solution's
outputs on the probes, a training run's metrics, the untrained model's. The sampler verdict
explains mistakes with the stand-ins' arithmetic in numpy (`runner/probe_values.py`), checked
here against the Keras stand-ins that the runner uses.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from judging import REPO_ROOT
from keras import ops

from autograder.assignment.solution import solution_sources
from autograder.grader_state.cache import MetricsCache, keras_identity
from autograder.runner import probe_values, stand_ins
from autograder.verdicts import solution_outputs as outputs_module
from diffusion_course.config import DDIMConfig

QUICK = DDIMConfig.from_profile("quick")


def test_a_description_with_tuples_is_found_by_a_later_process(tmp_path):
    """A training run is described by its programs' (source, own) tuples, which come back from
    the JSON file as lists: the entry must still be found (it was not, and every grading trained
    the solution again)."""
    description = {"kind": "trained", "programs": {"denoise": [("def denoise(): ...", True)]}}
    MetricsCache(tmp_path).put(description, {"kid": 0.9})
    script = (f"import sys; sys.path[:0] = [{str(REPO_ROOT)!r}]; "
              "from autograder.grader_state.cache import MetricsCache; "
              f"print(MetricsCache({str(tmp_path)!r}).get({description!r}))")
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True).stdout
    assert found.strip() == "{'kid': 0.9}"


def test_keras_is_named_as_keras_names_itself(monkeypatch):
    """The cache keys name the Keras backend and version without asking Keras: the name must
    be Keras's own, or no entry would ever be found."""
    assert keras_identity() == {"backend": keras.backend.backend(), "keras": keras.__version__}
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert keras_identity()["backend"] == "jax"


def test_keras_is_named_while_another_thread_imports_it():
    """The judge prepares its measurement (importing Keras) in a thread while its own thread
    reads the cache: naming Keras then must not touch the half-imported module (it raised
    "partially initialized module 'keras' has no attribute 'backend'", a grader error)."""
    script = textwrap.dedent(f"""
        import sys, threading
        sys.path[:0] = [{str(REPO_ROOT)!r}]
        from autograder.grader_state.cache import keras_identity
        importing = threading.Thread(target=lambda: __import__("keras"))
        importing.start()
        names = set()
        while importing.is_alive():
            names.add(keras_identity()["backend"])
        print(sorted(names))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[-2] == "['tensorflow']"


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("oracle", [False, True])
def test_the_numpy_stand_ins_give_what_the_keras_stand_ins_give(training, oracle):
    rng = np.random.default_rng(5)
    inputs = probe_values.probe_inputs(QUICK)
    noisy_images = rng.standard_normal(inputs["initial_noise"].shape).astype("float32")
    times = rng.uniform(size=(len(noisy_images), 1, 1, 1)).astype("float32")
    keras_rates = [stand_ins.to_numpy(rates) for rates in stand_ins.probe_schedule(None, times)]
    numpy_rates = probe_values.probe_rates(times)
    for keras_value, numpy_value in zip(keras_rates, numpy_rates):
        np.testing.assert_allclose(numpy_value, keras_value, rtol=1e-6)

    if oracle:
        network = stand_ins.target_oracle_network(inputs["clean_image"], "image")
        networks = (network, network)
    else:
        networks = stand_ins.stand_in_networks(QUICK)
    model = stand_ins.probe_model(QUICK, {}, *networks)
    keras_outputs = stand_ins.probe_denoise(
        model, *map(ops.convert_to_tensor, (noisy_images, *keras_rates)), training=training)
    numpy_outputs = probe_values.probe_denoised(
        noisy_images, *numpy_rates, training=training,
        clean_image=inputs["clean_image"] if oracle else None)
    for keras_value, numpy_value in zip(keras_outputs, numpy_outputs):
        np.testing.assert_allclose(numpy_value, stand_ins.to_numpy(keras_value), rtol=1e-5,
                                   atol=1e-5)


def test_the_solution_outputs_come_back_from_the_cache_unchanged(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs_module, "_solution_outputs_by_config", {})
    computed = outputs_module.solution_outputs(QUICK, tmp_path)
    monkeypatch.setattr(outputs_module, "_solution_outputs_by_config", {})
    monkeypatch.setattr(outputs_module, "_computed", lambda config: pytest.fail("recomputed"))
    cached = outputs_module.solution_outputs(QUICK, tmp_path)

    def same(first, second):
        assert type(first) is type(second)
        if isinstance(first, dict):
            assert list(first) == list(second)  # True and False stay booleans
            for key in first:
                same(first[key], second[key])
        elif isinstance(first, list):
            assert len(first) == len(second)
            for one, other in zip(first, second):
                same(one, other)
        elif isinstance(first, np.ndarray):
            assert first.dtype == second.dtype
            np.testing.assert_array_equal(first, second)
        else:
            assert first == second

    same(computed, cached)
    assert set(cached["denoise"]) == {True, False}


def test_a_grading_whose_results_are_cached_starts_no_tensorflow(grade_submission):
    """The solution graded once (this process), then again in a fresh process on the same cache,
    the way nbgrader's hook starts the judge (`StartVerdict`, with the profile that the grading
    run decided): the same verdicts, and neither TensorFlow nor Keras imported there. The units
    runner in the sandbox still starts TensorFlow: it runs the student's code."""
    first = {cell: verdict.passed
             for cell, verdict in grade_submission(solution_sources()).items()}
    script = f"""
import json, sys
sys.path[:0] = [{str(REPO_ROOT)!r}]
from autograder.nbgrader_steps.verdict_cells import _grade_in_background
verdicts = _grade_in_background(json.loads(sys.stdin.read())).result()
print(json.dumps({{"verdicts": {{cell: verdict.passed for cell, verdict in verdicts.items()}},
                  "tensorflow": "tensorflow" in sys.modules, "keras": "keras" in sys.modules}}))
"""
    environment = {**os.environ, "DIFFUSION_PROFILE": "quick",
                   "DIFFUSION_GRADER_CACHE": str(grade_submission.cache_dir)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            input=json.dumps(solution_sources()), env=environment, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads(result.stdout.strip().splitlines()[-1])
    assert again["verdicts"] == first
    assert all(first.values())
    assert not again["tensorflow"] and not again["keras"], again
