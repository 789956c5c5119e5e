"""The trusted half of the DDIM autograder: runs a submission in fresh processes and judges it.

A notebook kernel cannot grade itself: the student's code runs in it and can replace anything
the tests call (see /work/shared/notes/nbgrader.md, "What nbgrader protects"). So the trusted
nbgrader preprocessor takes the three answer cells from the notebook's JSON and calls

    verdicts = grade({"diffusion_schedule": ..., "denoise": ..., "reverse_diffusion": ...},
                     preamble=setup_cell_source, sandbox_prefix=(...sandbox command..., "--"))
    verdicts["test_denoise"]   # Verdict(passed=False, score_fraction=0.583, message="...")

`grade` runs the student's code only in fresh subprocesses (`student_runner.py`, which holds no
reference code and decides nothing), reads back raw tensors and weights, and decides every
verdict here, against `autograder.reference`:

- test_diffusion_schedule, test_denoise, test_reverse_diffusion: each function alone, with
  every other part of the model replaced by the runner's stand-ins; the reference functions go
  through exactly the same probes in this process, so "expected" is the reference's output.
- test_training_kid: a short seeded training run with the student's functions (the reference's
  for any function that failed its own test), then the noise MAE and the KID of generated images
  measured here, compared with the same run of the reference code and with the untrained model.

Training budget (measured on this 2-core CPU, quick profile: 16 px images, widths (16, 32),
batch 16, learning rate 3e-3): 150 AdamW steps on 512 synthetic flowers
(`diffusion_course/synthetic.py`), EMA decay 0.9 because 0.999 would leave the EMA network at
its initialisation after so few steps; KID of 256 generated images (3 DDIM steps) against 256
held-out images. Over reference seeds 0-5 the KID (offline features) was 0.86 ± 0.045 (min 0.77,
max 0.91) and the noise MAE 0.281 ± 0.002; the untrained model's KID is about 19 and its MAE
0.797. Hence the pass rule: noise MAE < 0.5; KID within ±35% of the reference run's (about
±0.3, over 6 seed standard deviations: a correct solution written differently, with the same
seed, lands about 1% from it); and KID below a quarter of the untrained model's. A training run
takes about 11 s.

The full profile (64 px, the course's U-Net, batch 64) is for a GPU: 1,000 steps, EMA 0.99,
KID of 256 images against 256 (Inception features when their weights are in the Keras cache).
These numbers and its margins (copied from the quick profile) were NOT measured: no GPU was
available. Measure its seed-to-seed spread with `measure_reference_spread` before using it.

Caches (default ~/.cache/diffusion-course/grader, or $DIFFUSION_GRADER_CACHE): the metrics of
the reference run and of the untrained model, keyed by the configuration, seed, budget, KID
features and a hash of all the code involved. They make every submission after the first one
cheaper.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import ops

from autograder import student_runner as runner
from autograder.reference import (
    REFERENCE_FUNCTIONS,
    SOLUTION_NOTEBOOK,
    ReferenceDiffusionModel,
    setup_source,
    solution_sources,
)
from diffusion_course.checkpoints import load_checkpoint
from diffusion_course.config import DDIMConfig, default_profile
from diffusion_course.kid import (
    INCEPTION_WEIGHTS_FILE,
    inception_weights_cache_dir,
    kernel_inception_distance,
    make_encoder,
)
from diffusion_course.synthetic import synthetic_flowers

TEST_CELLS = {
    "diffusion_schedule": "test_diffusion_schedule",
    "denoise": "test_denoise",
    "reverse_diffusion": "test_reverse_diffusion",
}
TRAINING_TEST_CELL = "test_training_kid"

UNLEARNED_NOISE_MAE = float(np.sqrt(2.0 / np.pi))  # E|ε| for ε ~ N(0, 1): predicting zero
TRAIN_IMAGES_SEED = 0
HELD_OUT_IMAGES_SEED = 1
EVALUATION_SEED = 7
UNITS_TIMEOUT_S = 180
RUNNER_PATH = Path(runner.__file__).resolve()
CODE_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Verdict:
    """The outcome of one graded test cell."""

    passed: bool
    score_fraction: float  # the share of the cell's checks that passed (training: 0 or 1)
    message: str


@dataclass(frozen=True)
class TrainingBudget:
    """How long the grader trains, what it measures, and what passes (see the docstring)."""

    steps: int
    ema: float
    num_train_images: int
    num_kid_images: int
    max_noise_mae: float
    kid_relative_margin: float  # |KID - reference KID| <= margin * reference KID
    max_fraction_of_untrained_kid: float
    timeout_s: int


TRAINING_BUDGETS = {
    "quick": TrainingBudget(steps=150, ema=0.9, num_train_images=512, num_kid_images=256,
                            max_noise_mae=0.5, kid_relative_margin=0.35,
                            max_fraction_of_untrained_kid=0.25, timeout_s=240),
    "full": TrainingBudget(steps=1000, ema=0.99, num_train_images=2048, num_kid_images=256,
                           max_noise_mae=0.5, kid_relative_margin=0.6,
                           max_fraction_of_untrained_kid=0.25, timeout_s=600),
}


# ---- running the student runner ------------------------------------------------------------


class _RunnerProcess:
    """One `student_runner.py` subprocess, started at once and collected by `finish()`."""

    def __init__(self, task, request, workdir, runner_path, sandbox_prefix, timeout):
        self.task = task
        self.timeout = timeout
        self.folder = Path(tempfile.mkdtemp(prefix=f"{task}-", dir=workdir))
        self.result_dir = self.folder / "result"
        request_path = self.folder / "request.json"
        request_path.write_text(json.dumps({"task": task, **request}))
        environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                       "KERAS_BACKEND": "tensorflow",
                       # several TensorFlow processes may share one GPU
                       "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
        self.log_path = self.folder / "output.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [*sandbox_prefix, sys.executable, "-I", str(runner_path), str(request_path),
                 str(self.result_dir)],
                cwd=self.folder, env=environment, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        self.deadline = time.monotonic() + timeout

    def finish(self):
        """Returns the result (see `load_runner_result`) or raises `RunnerFailure`."""
        try:
            self.process.wait(timeout=max(0.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.cancel()
            raise RunnerFailure(f"the {self.task} run did not finish within {self.timeout} s "
                                "and was stopped") from None
        if self.process.returncode != 0:
            raise RunnerFailure(f"the {self.task} run crashed (exit code "
                                f"{self.process.returncode}); its last output:\n"
                                f"{self._log_tail()}")
        try:
            return load_runner_result(self.result_dir)
        except (OSError, ValueError, KeyError) as error:
            raise RunnerFailure(f"the {self.task} run left no readable result ({error})") from None

    def cancel(self):
        """Stops the runner and everything it started: they share its session's process group."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def _log_tail(self, num_lines=8):
        lines = self.log_path.read_text(errors="replace").splitlines()
        # TensorFlow's start-up notices are noise here
        lines = [line for line in lines if not line.startswith(("I0000", "WARNING: All log"))]
        return "\n".join(lines[-num_lines:])


class RunnerFailure(Exception):
    """A runner process timed out, crashed or wrote no result."""


def load_runner_result(result_dir):
    """result.json with its {"array": key} placeholders replaced by the arrays of result.npz.

    The files come from a process that student code controlled: nothing in them is executed,
    pickles are refused, and an unknown array key reads as None.
    """
    result_dir = Path(result_dir)
    with np.load(result_dir / "result.npz", allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}

    def with_arrays(node):
        if set(node) == {"array"}:
            return arrays.get(node["array"])
        return node

    return json.loads((result_dir / "result.json").read_text(), object_hook=with_arrays)


# ---- checks and messages -------------------------------------------------------------------


class _Unusable(Exception):
    """The function cannot be judged at all (it raised, or returned the wrong kind of thing)."""


class _Checks:
    """The checks of one test cell; the verdict lists every failure."""

    def __init__(self, function_name):
        self.function_name = function_name
        self.count = 0
        self.failures = []

    def expect(self, condition, failure_message):
        self.count += 1
        if not condition:
            self.failures.append(failure_message)

    def verdict(self):
        if not self.failures:
            return Verdict(True, 1.0, f"{self.function_name}: all {self.count} checks passed.")
        passed = self.count - len(self.failures)
        return Verdict(False, round(passed / self.count, 3),
                       f"{self.function_name}: {len(self.failures)} of {self.count} checks "
                       "failed:\n- " + "\n- ".join(self.failures))


def _error_text(error):
    """What a recorded error says, as a verb phrase: "raised ValueError: ... (at line 3 ...)"."""
    if error["type"] == "NotImplementedError":
        text = ("still raises NotImplementedError: replace the `raise NotImplementedError()` "
                "in its cell with your code")
    else:
        text = f"raised {error['type']}: {error['message']}"
    if error.get("where"):
        text += f" (at {error['where']})"
    return text


def _returned(record, what):
    """The value a probe recorded, or `_Unusable` saying why there is none."""
    if record is None:
        raise _Unusable(f"the grader got no result for {what}")
    if "error" in record:
        raise _Unusable(f"{what} {_error_text(record['error'])}")
    return record["returned"]


def _tensor(value, what):
    """A recorded tensor as a float64 array (or `_Unusable`)."""
    if value.get("kind") != "tensor" or value.get("value") is None:
        raise _Unusable(f"{what} should be a tensor, got a {value.get('kind')}")
    return np.asarray(value["value"], np.float64)


def _pair(record, what, names):
    """The two tensors of a returned (a, b) pair, with their recorded dtypes."""
    returned = _returned(record, what)
    items = returned.get("items")
    if items is None or len(items) != 2:
        count = "" if items is None else f" of {len(items)} items"
        raise _Unusable(f"{what} should return the pair ({', '.join(names)}), got a "
                        f"{returned.get('kind')}{count}")
    return [(_tensor(item, f"{name} returned by {what}"), item.get("dtype"))
            for item, name in zip(items, names)]


def _close(actual, expected, tolerance=1e-5):
    """Same shape (after broadcasting a batch of scalars) and equal within the tolerance."""
    try:
        actual, expected = np.broadcast_arrays(actual, expected)
    except ValueError:
        return False
    return bool(np.all(np.abs(actual - expected) <= tolerance + tolerance * np.abs(expected)))


def _largest_difference(actual, expected):
    try:
        return float(np.max(np.abs(np.subtract(actual, expected))))
    except ValueError:
        return float("inf")


def _round(values, digits=3):
    return np.round(np.asarray(values, np.float64).ravel(), digits).tolist()


# ---- the reference's outputs on the same probes ---------------------------------------------


_reference_outputs_by_config = {}


def reference_outputs(config):
    """The reference functions' outputs on the runner's probes (computed once per config)."""
    if config not in _reference_outputs_by_config:
        outputs = {name: {} for name in runner.FUNCTION_NAMES}
        for bounds in ("course", "other"):
            model, times = runner.schedule_probe(REFERENCE_FUNCTIONS["diffusion_schedule"],
                                                 runner.schedule_probe_config(config, bounds))
            outputs["diffusion_schedule"][bounds] = [runner.to_numpy(rates)
                                           for rates in model.diffusion_schedule(times)]
        model, arguments = runner.denoise_probe(REFERENCE_FUNCTIONS["denoise"], config,
                                                oracle=False)
        for training in (True, False):
            outputs["denoise"][training] = [
                runner.to_numpy(value) for value in model.denoise(*arguments, training=training)]
        for name, (steps, oracle) in runner.sampler_runs().items():
            model, initial_noise, calls = runner.reverse_diffusion_probe(
                REFERENCE_FUNCTIONS["reverse_diffusion"], config, oracle)
            final = runner.to_numpy(model.reverse_diffusion(initial_noise, steps))
            outputs["reverse_diffusion"][name] = {"final": final, "calls": calls,
                                                  "model": model}
        _reference_outputs_by_config[config] = outputs
    return _reference_outputs_by_config[config]


# ---- test_diffusion_schedule ---------------------------------------------------------------


def judge_schedule(outcome, reference, config):
    checks = _Checks("diffusion_schedule")
    times = runner.SCHEDULE_TIMES.ravel()
    names = ("noise_rates", "signal_rates")
    (noise_rates, noise_dtype), (signal_rates, signal_dtype) = _pair(
        outcome["course"]["eager"], "diffusion_schedule", names)
    expected_shape = runner.SCHEDULE_TIMES.shape
    checks.expect(noise_rates.shape == expected_shape == signal_rates.shape,
                  f"for diffusion_times of shape {expected_shape}, both rates should have that "
                  f"shape, so that they broadcast over a batch of images; got "
                  f"{noise_rates.shape} and {signal_rates.shape}")
    checks.expect(noise_dtype == "float32" == signal_dtype,
                  f"the rates should be float32 like the images, got {noise_dtype} and "
                  f"{signal_dtype} (compute them with keras.ops from the float32 times, or "
                  f"cast them with ops.cast(..., \"float32\"))")
    if noise_rates.size != times.size or signal_rates.size != times.size:
        raise _Unusable(f"diffusion_schedule returned {noise_rates.size} and "
                        f"{signal_rates.size} rates for {times.size} diffusion times")
    noise_rates, signal_rates = noise_rates.ravel(), signal_rates.ravel()

    total_power = noise_rates**2 + signal_rates**2
    checks.expect(np.allclose(total_power, 1.0, atol=1e-5),
                  f"noise_rate² + signal_rate² should be 1 at every time (the noisy images keep "
                  f"unit variance), got values from {total_power.min():.4f} to "
                  f"{total_power.max():.4f}")
    _check_endpoint(checks, signal_rates[0], "t=0", "max_signal_rate", config.max_signal_rate,
                    config)
    _check_endpoint(checks, signal_rates[-1], "t=1", "min_signal_rate", config.min_signal_rate,
                    config)
    checks.expect(np.all(np.diff(signal_rates) < 0) and np.all(np.diff(noise_rates) > 0),
                  f"as t grows from 0 to 1 the signal rate should fall and the noise rate rise; "
                  f"got signal rates {_round(signal_rates, 3)}")
    expected_noise, expected_signal = (rates.ravel() for rates in reference["course"])
    worst = int(np.argmax(np.abs(signal_rates - expected_signal)
                          + np.abs(noise_rates - expected_noise)))
    checks.expect(_close(noise_rates, expected_noise) and _close(signal_rates, expected_signal),
                  f"the rates should follow the cosine schedule between the two bounds; at "
                  f"t={times[worst]:.1f} expected noise_rate {expected_noise[worst]:.4f} and "
                  f"signal_rate {expected_signal[worst]:.4f}, got {noise_rates[worst]:.4f} and "
                  f"{signal_rates[worst]:.4f}")
    checks.expect(*_other_bounds_check(outcome["other"]["eager"], reference["other"],
                                       signal_rates))
    checks.expect(*_compiled_check(outcome["course"]["compiled"], noise_rates, signal_rates))
    return checks.verdict()


def _check_endpoint(checks, signal_rate, where, bound_name, bound, config):
    hint = ""
    if abs(signal_rate - np.sqrt(1.0 - bound**2)) < 1e-3:
        hint = (" (are sin and cos swapped, or the pair returned as (signal_rates, "
                "noise_rates)? It is (noise_rates, signal_rates))")
    elif abs(signal_rate - (config.min_signal_rate + config.max_signal_rate - bound)) < 1e-3:
        hint = " (does time run backwards? t=0 is the clean end, at max_signal_rate)"
    checks.expect(abs(signal_rate - bound) < 1e-5,
                  f"signal_rate at {where} should be {bound_name}={bound}, got "
                  f"{signal_rate:.4f}{hint}")


def _other_bounds_check(record, expected_rates, course_signal_rates):
    bounds = runner.OTHER_SIGNAL_RATE_BOUNDS
    setting = ", ".join(f"{name}={value}" for name, value in bounds.items())
    try:
        (noise_rates, _), (signal_rates, _) = _pair(record, f"diffusion_schedule with {setting}",
                                                    ("noise_rates", "signal_rates"))
    except _Unusable as problem:
        return False, str(problem)
    expected_noise, expected_signal = expected_rates
    hint = ""
    if _close(signal_rates.ravel(), course_signal_rates):
        hint = (": it gave the same rates as with the course's bounds. Read the bounds from "
                "self.config instead of writing them into the code")
    return (_close(noise_rates, expected_noise) and _close(signal_rates, expected_signal),
            f"with {setting} in self.config, signal_rate should run from "
            f"{bounds['max_signal_rate']} to {bounds['min_signal_rate']}, got "
            f"{signal_rates.ravel()[0]:.4f} to {signal_rates.ravel()[-1]:.4f}{hint}")


def _compiled_check(record, noise_rates, signal_rates):
    """Inside tf.function, as in the train step, the values must be the eager ones."""
    try:
        (compiled_noise, _), (compiled_signal, _) = _pair(
            record, "diffusion_schedule inside tf.function", ("noise_rates", "signal_rates"))
    except _Unusable as problem:
        return False, (f"it works eagerly but not when traced into a graph, as the train step "
                       f"does: {problem}. Use keras.ops on tensors, not numpy or .numpy()")
    return (_close(compiled_noise.ravel(), noise_rates)
            and _close(compiled_signal.ravel(), signal_rates),
            "inside tf.function it returned other values than eagerly: up to "
            f"{_largest_difference(compiled_signal.ravel(), signal_rates):.3g} apart")


# ---- test_denoise --------------------------------------------------------------------------


def _network_that_ran(pred_noises, noisy_images):
    """Which affine stand-in produced pred_noises, and the noise levels it was given."""
    stand_ins = {"self.network": runner.TRAINING_NETWORK_GAINS,
                 "self.ema_network": runner.EMA_NETWORK_GAINS}
    for name, (image_gain, variance_gain) in stand_ins.items():
        residual = pred_noises - image_gain * noisy_images
        if residual.shape == noisy_images.shape and np.all(
                residual.std(axis=(1, 2, 3)) < 1e-4 * (1.0 + np.abs(residual).max())):
            return name, residual.mean(axis=(1, 2, 3)) / variance_gain
    return None, None


def _received_noise_levels(received, noise_rates, signal_rates):
    """What the network received, named when it is one of the usual wrong choices."""
    if received is None:
        return "but which noise level it received cannot be told"
    for description, values in (("noise_rates", noise_rates), ("signal_rates", signal_rates),
                                ("signal_rates**2", signal_rates**2)):
        if _close(received, values, 1e-4):
            return f"got {_round(received)} (that is {description})"
    return f"got {_round(received)}"


def judge_denoise(outcome, reference, config):
    checks = _Checks("denoise")
    inputs = runner.probe_inputs(config)
    noisy_images = inputs["noisy_images"].astype(np.float64)
    noise_rates, signal_rates = (inputs[name].astype(np.float64)
                                 for name in ("noise_rates", "signal_rates"))
    names = ("pred_noises", "pred_images")
    outputs = {}
    for training, expected_network in ((True, "self.network"), (False, "self.ema_network")):
        call = f"denoise(..., training={training})"
        (pred_noises, _), (pred_images, _) = outputs[training] = _pair(
            outcome[f"affine_training_{training}"], call, names)
        checks.expect(pred_noises.shape == noisy_images.shape == pred_images.shape,
                      f"{call} should return two tensors shaped like the noisy images "
                      f"{noisy_images.shape}, got {pred_noises.shape} and {pred_images.shape}")
        network, received = _network_that_ran(pred_noises, noisy_images)
        reason = ("the network being trained" if training
                  else "sampling and evaluation use the EMA weights")
        checks.expect(network == expected_network,
                      f"{call} should predict the noise with {expected_network} ({reason}); "
                      + ("its pred_noises are the output of neither network on the noisy images"
                         if network is None else f"it used {network}"))
        expected_variances = noise_rates.ravel() ** 2
        checks.expect(received is not None and _close(received, expected_variances, 1e-4),
                      f"{call}: the network should receive the noise variances "
                      f"noise_rates**2 = {_round(expected_variances)}, "
                      + _received_noise_levels(received, noise_rates.ravel(),
                                               signal_rates.ravel()))
        # x̂0 = (x − n·ε̂) / s, from the student's own ε̂: right even if the network call is wrong
        consistent_images = (noisy_images - noise_rates * pred_noises) / signal_rates
        checks.expect(_close(pred_images, consistent_images, 1e-4),
                      f"{call}: pred_images should be (noisy_images - noise_rates * pred_noises)"
                      f" / signal_rates, the forward mix solved for the image; they differ by "
                      f"up to {_largest_difference(pred_images, consistent_images):.3g}")
    for training in (True, False):
        (pred_noises, _), (pred_images, _) = _pair(
            outcome[f"oracle_training_{training}"],
            f"denoise(..., training={training}) with the oracle network", names)
        checks.expect(_close(pred_images, inputs["clean_image"], 1e-4),
                      f"with a network that returns the true noise, denoise(..., training="
                      f"{training}) should give back the clean images; the largest difference "
                      f"is {_largest_difference(pred_images, inputs['clean_image']):.3g}")
    pairs = [(value, expected) for training in (True, False)
             for (value, _), expected in zip(outputs[training], reference[training])]
    checks.expect(all(_close(value, expected, 1e-4) for value, expected in pairs),
                  f"on the same inputs and stand-in networks, the outputs differ from the "
                  f"reference solution's by up to "
                  f"{max(_largest_difference(value, expected) for value, expected in pairs):.3g}")
    checks.expect(*_compiled_denoise_check(outcome["compiled"],
                                           [value for value, _ in outputs[True]]))
    return checks.verdict()


def _compiled_denoise_check(record, eager_outputs):
    """Inside tf.function, as in the train step, the values must be the eager ones."""
    try:
        outputs = _pair(record, "denoise inside tf.function", ("pred_noises", "pred_images"))
    except _Unusable as problem:
        return False, (f"it works eagerly but not when traced into a graph, as the train step "
                       f"does: {problem}. Call the network directly (not .predict) and use "
                       f"keras.ops on tensors")
    return (all(_close(value, eager, 1e-4) for (value, _), eager in zip(outputs, eager_outputs)),
            "inside tf.function it returned other values than eagerly")


# ---- test_reverse_diffusion ----------------------------------------------------------------


def _rates(call):
    """(noise_rates, signal_rates) of a logged call as one value per image."""
    return [np.broadcast_to(np.asarray(call[name], np.float64),
                            (runner.NUM_SAMPLER_IMAGES, 1, 1, 1)).ravel()
            for name in ("noise_rates", "signal_rates")]


def _denoised(model, call):
    """What the probe denoise returned for a logged call: (pred_noises, pred_images)."""
    return [runner.to_numpy(value).astype(np.float64) for value in runner.probe_denoise(
        model, *(ops.convert_to_tensor(np.asarray(call[name], np.float32))
                 for name in ("noisy_images", "noise_rates", "signal_rates")),
        training=call["training"])]


def _remix(rates, denoised):
    """x' = s'·x̂0 + n'·ε̂ (DDIM eq. 12 with σ = 0) at the given (noise, signal) rates."""
    (noise_rates, signal_rates), (pred_noises, pred_images) = rates, denoised
    return (signal_rates.reshape(-1, 1, 1, 1) * pred_images
            + noise_rates.reshape(-1, 1, 1, 1) * pred_noises)


def _format_time(time):
    return f"{round(float(time), 3) + 0.0:.3f}"  # + 0.0 turns -0.0 into 0.0


def _step_inputs_problem(calls, expected_calls, model, steps):
    """The first step whose denoise inputs are wrong, explained; None if there is none.

    Each step is judged against the student's own previous step (the probe denoise is
    deterministic), so one mistake is reported where it happens, not at every later step.
    """
    for step, (call, expected) in enumerate(zip(calls, expected_calls)):
        where = f"at step {step + 1} of {steps}"
        try:
            noise_rates, signal_rates = _rates(call)
        except ValueError:
            return (f"{where}, denoise got noise_rates of shape {np.shape(call['noise_rates'])}"
                    f": expected one rate per image, shaped ({runner.NUM_SAMPLER_IMAGES}, 1, 1, "
                    f"1)")
        expected_rates = _rates(expected)
        if not (_close(noise_rates, expected_rates[0], 1e-4)
                and _close(signal_rates, expected_rates[1], 1e-4)):
            with np.errstate(all="ignore"):
                time = runner.probe_times(noise_rates, signal_rates)[0]
            expected_time = runner.probe_times(*expected_rates)[0]
            hint = ""
            if abs(abs(time - expected_time) - 1.0 / steps) < 1e-3:
                hint = " (is diffusion_times off by one step?)"
            return (f"{where}, denoise should be called at diffusion time "
                    f"{_format_time(expected_time)} = 1 - {step} * step_size, with the "
                    f"schedule's rates for that time; the rates it got belong to "
                    f"t={_format_time(time)}{hint}")
        noisy_images = np.asarray(call["noisy_images"], np.float64)
        if step == 0:
            expected_images = np.asarray(expected["noisy_images"], np.float64)
            if not _close(noisy_images, expected_images, 1e-4):
                return (f"{where}, denoise should get the initial noise itself (at t=1 the "
                        f"noisy image is pure noise); it got images that differ from it by up "
                        f"to {_largest_difference(noisy_images, expected_images):.3g}")
            continue
        previous = calls[step - 1]
        denoised = _denoised(model, previous)
        remixed = _remix(expected_rates, denoised)
        if _close(noisy_images, remixed, 1e-4):
            continue
        hint = ""
        if _close(noisy_images, _remix(_rates(previous), denoised), 1e-4):
            hint = (": they are remixed at the previous step's rates. Remix at the next, "
                    "lower noise level: next_signal_rates * pred_images + next_noise_rates * "
                    "pred_noises")
        elif _close(noisy_images, denoised[1], 1e-4):
            hint = ": they are the previous pred_images, not remixed with the predicted noise"
        return (f"{where}, denoise should get the previous step's pred_images and pred_noises "
                f"remixed at this step's rates (DDIM eq. 12 with σ=0); the noisy images differ "
                f"from that by up to {_largest_difference(noisy_images, remixed):.3g}{hint}")
    return None


def _final_output_hint(final, calls, model, steps):
    """Why the returned images are not the last pred_images, when a known mistake explains it."""
    if not calls:
        return ""
    last = calls[-1]
    if _close(final, np.asarray(last["noisy_images"], np.float64), 1e-4):
        return (" (it is the last noisy input of denoise: return the last pred_images, the "
                "prediction of the clean images)")
    noise_rates, signal_rates = _rates(last)
    times = runner.probe_times(noise_rates, signal_rates)
    next_rates = [runner.to_numpy(rates).astype(np.float64).ravel() for rates in
                  runner.probe_schedule(model, (times - 1.0 / steps).reshape(-1, 1, 1, 1))]
    if _close(final, _remix(next_rates, _denoised(model, last)), 1e-4):
        return (" (it is the last remix, next_noisy_images: return pred_images, the "
                "prediction of the clean images)")
    return ""


def judge_reverse_diffusion(outcome, reference, config):
    checks = _Checks("reverse_diffusion")
    image_shape = (runner.NUM_SAMPLER_IMAGES, config.image_size, config.image_size, 3)
    runs = runner.sampler_runs()
    unusable = []
    for name, (steps, oracle) in runs.items():
        record, expected = outcome.get(name), reference[name]
        call = f"reverse_diffusion(initial_noise, diffusion_steps={steps})"
        if oracle:
            call += " with the oracle network"
        try:
            final = _tensor(_returned(record, call), f"the value returned by {call}")
        except _Unusable as problem:
            unusable.append(str(problem))
            checks.expect(False, str(problem))
            continue
        calls = record["calls"]
        hint = _final_output_hint(final, calls, expected["model"], steps)
        if oracle:
            clean_image = runner.probe_inputs(config)["clean_image"]
            checks.expect(_close(final, clean_image, 1e-4),
                          f"{call}: with a network that knows the clean image, the sampler "
                          f"should return exactly that image; the largest difference is "
                          f"{_largest_difference(final, clean_image):.3g}{hint}")
            continue
        checks.expect(final.shape == image_shape,
                      f"{call} should return images shaped like the initial noise "
                      f"{image_shape}, got {final.shape}")
        extra = len(calls) - steps
        checks.expect(extra == 0,
                      f"{call} should call denoise once per step, {steps} times; it called it "
                      f"{len(calls)} times" + (" (one step too many or too few?)"
                                               if abs(extra) == 1 else ""))
        training_flags = sorted({bool(logged["training"]) for logged in calls})
        checks.expect(training_flags in ([], [False]),
                      f"{call} should call denoise with training=False, so that the EMA "
                      f"network samples; it passed training={training_flags}")
        problem = _step_inputs_problem(calls, expected["calls"], expected["model"], steps)
        checks.expect(problem is None, f"{call}: {problem}")
        checks.expect(_close(final, expected["final"], 1e-4),
                      f"{call} should return the last step's pred_images; its result differs "
                      f"from the reference's by up to "
                      f"{_largest_difference(final, expected['final']):.3g}{hint}")
    if len(unusable) == len(runs):
        raise _Unusable(unusable[0])
    return checks.verdict()


# ---- the unit verdicts ---------------------------------------------------------------------


UNIT_JUDGES = {
    "diffusion_schedule": judge_schedule,
    "denoise": judge_denoise,
    "reverse_diffusion": judge_reverse_diffusion,
}


def judge_units(result, config):
    """{function name: Verdict} from the units runner's result."""
    return {name: _unit_verdict(name, result, reference_outputs(config)[name], config)
            for name in runner.FUNCTION_NAMES}


def _unit_verdict(name, result, reference, config):
    try:
        if name in result["timed_out"]:
            return Verdict(False, 0.0, f"{name}: its cell and its probes ran longer than "
                                       f"{runner.FUNCTION_TIME_LIMIT_S} s together and were "
                                       f"stopped (an endless loop?); a correct function takes "
                                       f"well under a second")
        if name in result["definition_errors"]:
            error = _error_text(result["definition_errors"][name])
            return Verdict(False, 0.0, f"{name}: its cell {error}")
        return UNIT_JUDGES[name](result["probes"][name], reference, config)
    except _Unusable as problem:
        return Verdict(False, 0.0, f"{name}: {problem}")
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        # the result was written by a process that student code controlled
        return Verdict(False, 0.0, f"{name}: the grader could not read its results "
                                   f"({type(error).__name__}: {error})")


# ---- test_training_kid ---------------------------------------------------------------------


def kid_feature_kind():
    """Inception when its ImageNet weights are in the Keras cache, else the offline features."""
    cached = Path(inception_weights_cache_dir()) / INCEPTION_WEIGHTS_FILE
    return "inception" if cached.is_file() else "offline"


def _code_hash():
    """Every line of code that a training run or its evaluation depends on."""
    digest = hashlib.sha256()
    files = sorted((CODE_ROOT / "diffusion_course").rglob("*.py")) + [
        RUNNER_PATH, Path(__file__).resolve(), CODE_ROOT / "diffusion_course" / "synthetic.py",
        SOLUTION_NOTEBOOK]
    for path in files:
        digest.update(path.relative_to(CODE_ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class _Evaluator:
    """Measures trained models here, in the trusted process, with the reference functions.

    Noise MAE: the EMA network's noise predictions on fixed held-out images, noises and times.
    KID: images generated by the reference sampler from fixed initial noise, in
    config.kid_diffusion_steps steps, against held-out images.
    """

    def __init__(self, config, budget, seed, cache_dir):
        self.config = config
        self.budget = budget
        self.seed = seed
        self.cache_dir = Path(cache_dir)
        size = config.image_size
        self.train_images = synthetic_flowers(budget.num_train_images, size, TRAIN_IMAGES_SEED)
        self.held_out_images = synthetic_flowers(budget.num_kid_images, size, HELD_OUT_IMAGES_SEED)
        rng = np.random.default_rng(EVALUATION_SEED)
        image_shape = self.held_out_images.shape
        self.initial_noise = rng.standard_normal(image_shape).astype("float32")
        self.noises = rng.standard_normal(image_shape).astype("float32")
        self.diffusion_times = rng.uniform(size=(image_shape[0], 1, 1, 1)).astype("float32")
        self.encoder = make_encoder(kid_feature_kind(), size)
        self.features = self.encoder.feature_name
        self.real_features = self.encoder.predict(self.held_out_images, verbose=0)
        self.code_hash = _code_hash()

    def cache_path(self, description):
        """The file for metrics of what `description` (a JSON-ready dict with a "kind") says."""
        key = json.dumps({
            **description, "config": self.config.to_dict(), "seed": self.seed,
            "budget": dataclasses.asdict(self.budget), "features": self.features,
            "backend": keras.backend.backend(), "keras": keras.__version__,
            "code": self.code_hash,
        }, sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        return self.cache_dir / f"{description['kind']}-{digest}.json"

    def cached(self, description):
        path = self.cache_path(description)
        return json.loads(path.read_text()) if path.is_file() else None

    def store(self, description, metrics):
        """Writes atomically: parallel graders may share the cache."""
        path = self.cache_path(description)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(metrics))
        os.replace(temporary, path)
        return metrics

    def metrics(self, model):
        """{"noise_mae", "kid", "features"} of a model, measured with the reference functions."""
        images = model.normalize(self.held_out_images)
        noise_rates, signal_rates = model.diffusion_schedule(self.diffusion_times)
        # x = s·x0 + n·ε, the forward process in closed form (DDIM eq. 4)
        noisy_images = signal_rates * images + noise_rates * self.noises
        pred_noises, _ = model.denoise(noisy_images, noise_rates, signal_rates, training=False)
        noise_mae = float(np.mean(np.abs(runner.to_numpy(pred_noises) - self.noises)))
        generated_images = model.generate(
            len(self.initial_noise), self.config.kid_diffusion_steps,
            initial_noise=ops.convert_to_tensor(self.initial_noise))
        generated_features = self.encoder.predict(runner.to_numpy(generated_images), verbose=0)
        kid = float(runner.to_numpy(kernel_inception_distance(self.real_features,
                                                              generated_features)))
        return {"noise_mae": noise_mae, "kid": kid, "features": self.features}

    def checkpoint_metrics(self, checkpoint_dir):
        model = ReferenceDiffusionModel(self.config, seed=self.seed)
        load_checkpoint(checkpoint_dir, model.checkpoint_parts(), self.config)
        return self.metrics(model)

    def untrained_metrics(self):
        """The model before its first step: the normaliser adapted, the networks initialised."""
        cached = self.cached({"kind": "untrained"})
        if cached is not None:
            return cached
        # seeded like the training runs, so these are the weights that they start from
        keras.utils.set_random_seed(self.seed)
        model = ReferenceDiffusionModel(self.config, seed=self.seed)
        model.adapt_normalizer(self.train_images)
        return self.store({"kind": "untrained"}, self.metrics(model))


class _TrainingRuns:
    """Training runs keyed by what they train (preamble and sources).

    The runs are deterministic, so each is run at most once and its metrics are cached on disk:
    the reference run, and any submission whose training sources equal one trained before
    (every submission whose failed functions were replaced by the reference's, and whose others
    are the reference's text, trains exactly the reference).
    """

    def __init__(self, session, evaluator):
        self.session = session
        self.evaluator = evaluator
        self.train_images_path = session.workdir / f"train-images-{evaluator.seed}.npz"
        np.savez(self.train_images_path, images=evaluator.train_images)
        self.running = {}

    @staticmethod
    def _description(preamble, sources):
        return {"kind": "trained", "preamble": preamble, "functions": sources}

    def _key(self, preamble, sources):
        return json.dumps(self._description(preamble, sources), sort_keys=True)

    def start(self, preamble, sources):
        """Starts the run unless it is cached or running already."""
        key = self._key(preamble, sources)
        if key not in self.running and self.evaluator.cached(
                self._description(preamble, sources)) is None:
            evaluator = self.evaluator
            self.running[key] = self.session.start("training", {
                "preamble": preamble, "functions": sources, "config": evaluator.config.to_dict(),
                "seed": evaluator.seed, "steps": evaluator.budget.steps,
                "train_images": str(self.train_images_path)}, evaluator.budget.timeout_s)

    def cancel(self, preamble, sources):
        run = self.running.pop(self._key(preamble, sources), None)
        if run is not None:
            run.cancel()

    def metrics(self, preamble, sources, who):
        """The run's metrics (measured here), or `_Unusable` saying why there are none."""
        description = self._description(preamble, sources)
        cached = self.evaluator.cached(description)
        if cached is not None:
            return cached
        self.start(preamble, sources)
        run = self.running.pop(self._key(preamble, sources))
        try:
            result = run.finish()
        except RunnerFailure as failure:
            raise _Unusable(f"{who} training run failed: {failure}") from None
        try:
            self._check_completed(result, who)
        except (KeyError, TypeError, AttributeError):
            # the result was written by a process that student code controlled
            raise _Unusable(f"{who} training run left an unreadable result") from None
        try:
            metrics = self.evaluator.checkpoint_metrics(run.result_dir / "checkpoint")
        except Exception as error:  # the checkpoint came from student-controlled code
            raise _Unusable(f"the weights of {who} training run could not be evaluated "
                            f"({type(error).__name__}: {error})") from None
        return self.evaluator.store(description, metrics)

    @staticmethod
    def _check_completed(result, who):
        if result["completed"]:
            return
        if "error" in result:
            raise _Unusable(f"training with {who} functions {_error_text(result['error'])}. "
                            "The train step runs them inside tf.function")
        errors = "; ".join(f"{name} {_error_text(error)}"
                           for name, error in result["definition_errors"].items())
        raise _Unusable(f"{who} training run could not define the functions: {errors}")


def judge_training(student, reference, untrained, budget, used):
    """The pass rule of the module docstring, with every number in the message."""
    lowest_kid = (1.0 - budget.kid_relative_margin) * reference["kid"]
    highest_kid = (1.0 + budget.kid_relative_margin) * reference["kid"]
    untrained_limit = budget.max_fraction_of_untrained_kid * untrained["kid"]
    checks = _Checks("training")
    checks.expect(student["noise_mae"] < budget.max_noise_mae,
                  f"after {budget.steps} steps the noise MAE should be below "
                  f"{budget.max_noise_mae} (the reference run reaches "
                  f"{reference['noise_mae']:.3f}; a model that learned nothing stays at "
                  f"√(2/π) ≈ {UNLEARNED_NOISE_MAE:.3f}), got {student['noise_mae']:.3f}")
    checks.expect(lowest_kid <= student["kid"] <= highest_kid,
                  f"the KID should be within ±{budget.kid_relative_margin:.0%} of the reference "
                  f"run's {reference['kid']:.3f} (same seed, same data), i.e. in "
                  f"[{lowest_kid:.3f}, {highest_kid:.3f}], got {student['kid']:.3f}")
    checks.expect(student["kid"] < untrained_limit,
                  f"the KID should be below {budget.max_fraction_of_untrained_kid} × the "
                  f"untrained model's {untrained['kid']:.3f} = {untrained_limit:.3f}, got "
                  f"{student['kid']:.3f}")
    summary = (f"Trained {budget.steps} steps with {used}. Noise MAE {student['noise_mae']:.3f} "
               f"(reference {reference['noise_mae']:.3f}, untrained "
               f"{untrained['noise_mae']:.3f}); KID {student['kid']:.3f} (reference "
               f"{reference['kid']:.3f}, untrained {untrained['kid']:.3f}); "
               f"KID features: {student['features']}.")
    verdict = checks.verdict()
    if verdict.passed:
        return Verdict(True, 1.0, f"training: {summary}")
    # the cell is all or nothing: a model either trains like the reference or it does not
    return Verdict(False, 0.0, f"{verdict.message}\n{summary}")


def _functions_used(passed):
    """Which functions were trained, e.g. "your denoise, with the reference ..."."""
    mine = [name for name in runner.FUNCTION_NAMES if passed[name]]
    reference = [name for name in runner.FUNCTION_NAMES if not passed[name]]
    used = f"your {_join(mine)}"
    if reference:
        used += (f", with the reference {_join(reference)} (yours did not pass "
                 f"{'its test' if len(reference) == 1 else 'their tests'})")
    return used


def _join(names):
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


# ---- grade ---------------------------------------------------------------------------------


def default_cache_dir():
    return Path(os.environ.get("DIFFUSION_GRADER_CACHE")
                or Path.home() / ".cache" / "diffusion-course" / "grader")


class _Session:
    """The runner processes of one grading, in one temporary folder; `close` stops them all."""

    def __init__(self, sandbox_prefix, timeout):
        self._folder = tempfile.TemporaryDirectory(prefix="ddim-grade-")
        self.workdir = Path(self._folder.name)
        # a copy beside the requests: the sandbox may hide the whole repository
        self.runner_path = Path(shutil.copy(RUNNER_PATH, self.workdir))
        self.sandbox_prefix = tuple(sandbox_prefix)
        self.timeout = timeout
        self.runs = []

    def start(self, task, request, default_timeout):
        self.runs.append(_RunnerProcess(task, request, self.workdir, self.runner_path,
                                        self.sandbox_prefix, self.timeout or default_timeout))
        return self.runs[-1]

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        for run in self.runs:
            run.cancel()
        self._folder.cleanup()


def _grading_setup(config):
    """The training configuration and budget of a grading configuration's profile."""
    budget = TRAINING_BUDGETS[config.profile]
    # with only budget.steps steps, the course's EMA decay would leave the EMA network untrained
    return config.replace(ema=budget.ema), budget


def grade(functions, preamble, config=None, seed=0, sandbox_prefix=(), timeout=None,
          cache_dir=None):
    """Grades one submission; returns {test cell grade_id: Verdict}.

    functions: {"diffusion_schedule" | "denoise" | "reverse_diffusion": source of its cell};
        a missing name counts as a cell that still raises NotImplementedError.
    preamble: the notebook's setup cell (imports), run before each function's source.
    config: the DDIMConfig to grade with (default: the machine's default profile); its profile
        picks the training budget, TRAINING_BUDGETS[config.profile].
    seed: seeds the training runs; the reference run uses the same one.
    sandbox_prefix: the command that confines the runner, e.g. ("bwrap", ..., "--").
    timeout: seconds for each runner process (default: UNITS_TIMEOUT_S for the probes and the
        budget's timeout_s for a training run).
    cache_dir: where the reference and untrained metrics are kept (default_cache_dir()).
    """
    # set before TensorFlow first touches a GPU here, which the runners must share
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    config = config or DDIMConfig.from_profile(default_profile())
    training_config, budget = _grading_setup(config)
    sources = {name: functions.get(name, f"def {name}(self, *args):\n"
                                         "    raise NotImplementedError()\n")
               for name in runner.FUNCTION_NAMES}
    with _Session(sandbox_prefix, timeout) as session:
        units_run = session.start("units", {"preamble": preamble, "functions": sources,
                                            "config": config.to_dict()}, UNITS_TIMEOUT_S)
        evaluator = _Evaluator(training_config, budget, seed, cache_dir or default_cache_dir())
        trainings = _TrainingRuns(session, evaluator)
        # most submissions pass all three tests: their training starts now, beside the probes,
        # and is replaced by one with reference functions only if a test fails
        trainings.start(preamble, sources)
        trainings.start(setup_source(), solution_sources())
        reference_outputs(config)
        untrained = evaluator.untrained_metrics()

        verdicts, passed = _unit_verdicts(units_run, config)
        training_sources = {name: sources[name] if passed[name] else solution_sources()[name]
                            for name in runner.FUNCTION_NAMES}
        if training_sources != sources:
            trainings.cancel(preamble, sources)
        if not any(passed.values()):
            verdicts[TRAINING_TEST_CELL] = Verdict(
                False, 0.0, "training: none of your three functions passed its test, so there "
                            "is nothing of yours to train. Fix them first.")
            return verdicts
        trainings.start(preamble, training_sources)
        reference = _reference_metrics(trainings)
        try:
            student = trainings.metrics(preamble, training_sources, "your")
        except _Unusable as problem:
            verdicts[TRAINING_TEST_CELL] = Verdict(False, 0.0, f"training: {problem}")
            return verdicts
        verdicts[TRAINING_TEST_CELL] = judge_training(student, reference, untrained, budget,
                                                      _functions_used(passed))
        return verdicts


def _reference_metrics(trainings):
    try:
        return trainings.metrics(setup_source(), solution_sources(), "the reference")
    except _Unusable as problem:
        raise RuntimeError(f"The grader itself is broken: {problem}") from None


def _unit_verdicts(units_run, config):
    """({test cell: Verdict}, {function name: passed}) of the three function tests."""
    try:
        by_function = judge_units(units_run.finish(), config)
    except RunnerFailure as failure:
        by_function = {name: Verdict(False, 0.0, f"{name}: {failure}")
                       for name in runner.FUNCTION_NAMES}
    return ({TEST_CELLS[name]: verdict for name, verdict in by_function.items()},
            {name: verdict.passed for name, verdict in by_function.items()})


def measure_reference_spread(config, seeds, cache_dir=None, timeout=None):
    """{seed: metrics} of the reference trained with each seed: the spread behind the margins.

    Each run is cached like a grading's reference run, so grading with one of these seeds later
    reuses it. Run it on the machine that grades, for each profile, before trusting the margins.
    """
    training_config, budget = _grading_setup(config)
    with _Session((), timeout) as session:
        return {seed: _reference_metrics(_TrainingRuns(session, _Evaluator(
                    training_config, budget, seed, cache_dir or default_cache_dir())))
                for seed in seeds}
