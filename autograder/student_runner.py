"""Runs a student's DDIM functions in a fresh process and writes down what they return.

This is the untrusted half of the autograder; `autograder/judge.py` is the trusted half. The
judge starts it, inside a sandbox, as

    python -I student_runner.py request.json result_dir

It imports `diffusion_course` and Keras only, never `autograder`: no reference code is in this
process, so a student's code can do anything here except read the solution or decide a verdict.
It writes raw outputs and judges nothing. A student function that raises is data, not a crash:
its error is recorded and the exit code stays 0.

The request is a JSON object:

    task          "units" or "training"
    preamble      the notebook's setup cell (imports), run before each function's source
    functions     {"diffusion_schedule" | "denoise" | "reverse_diffusion": source}
    config        DDIMConfig.to_dict()
    seed          training only: seeds the weights, the noises and the diffusion times
    steps         training only: the number of optimizer steps
    train_images  training only: an .npz whose "images" are float32 (N, size, size, 3) in [0, 1]

The result is result_dir/result.json; its arrays are stored in result_dir/result.npz and appear
in the JSON as {"array": key}. A training run also leaves its weights in result_dir/checkpoint.

Task "units" probes each function on its own, with every other part of the model replaced by a
known stand-in, so that one mistake costs one function only:

1. diffusion_schedule on times in [0, 1] shaped (n, 1, 1, 1), eagerly and inside tf.function,
   with the course's signal-rate bounds and with other bounds (hard-coded bounds show up there);
2. denoise with two affine stand-in networks, distinct for self.network and self.ema_network,
   whose outputs tell which one ran and which noise level it was given, and with an oracle
   network that returns the true noise;
3. reverse_diffusion with a probe schedule and a probe denoise (not the assignment's: log-SNR
   linear in time, image prediction) that log every call, for 1, 5 and 20 steps, and with an
   oracle that knows the clean image.

The judge imports this module and runs the same probes on the reference functions, so both
sides see exactly the same stand-ins and inputs.
"""

import functools
import json
import linecache
import signal
import sys
import time
import traceback
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from diffusion_course.config import DDIMConfig
from diffusion_course.ddim import DiffusionModel

FUNCTION_NAMES = ("diffusion_schedule", "denoise", "reverse_diffusion")
PROBE_SEED = 2021
FUNCTION_TIME_LIMIT_S = 30  # per function, so an endless loop costs only the function that has it

SCHEDULE_TIMES = np.linspace(0.0, 1.0, 11, dtype="float32").reshape(-1, 1, 1, 1)
# a second pair of bounds: a schedule that hard-codes 0.02 and 0.95 fails here
OTHER_SIGNAL_RATE_BOUNDS = {"min_signal_rate": 0.1, "max_signal_rate": 0.8}

# stand-in networks compute image_gain * images + variance_gain * noise_variances
TRAINING_NETWORK_GAINS = (0.5, 2.0)
EMA_NETWORK_GAINS = (-0.25, 3.0)
DENOISE_NOISE_RATES = np.array([0.2, 0.45, 0.7, 0.9], "float32").reshape(-1, 1, 1, 1)

# the probe schedule of the sampler: log-SNR linear in t, defined for every real t
PROBE_START_LOG_SNR = 2.5
PROBE_END_LOG_SNR = -5.0
REVERSE_DIFFUSION_STEPS = (1, 5, 20)
ORACLE_DIFFUSION_STEPS = 5
NUM_SAMPLER_IMAGES = 3


class FunctionTimeout(BaseException):
    """A function's cell and probes ran longer than FUNCTION_TIME_LIMIT_S in total.

    Not an Exception, so that neither the probes nor a student's `except Exception` catch it.
    """


# ---- the stand-ins (shared with the judge) ---------------------------------------------------


def affine_network(image_size, image_gain, variance_gain, name):
    """A network whose output image_gain·x + variance_gain·v reveals the variance v it got."""
    noisy_images = keras.Input(shape=(image_size, image_size, 3))
    noise_variances = keras.Input(shape=(1, 1, 1))
    outputs = layers.Lambda(
        lambda inputs: image_gain * inputs[0] + variance_gain * inputs[1]
    )([noisy_images, noise_variances])
    return keras.Model([noisy_images, noise_variances], outputs, name=name)


def noise_oracle_network(clean_image, name="noise_oracle"):
    """Knows the clean image x0, so returns the exact noise (x - √(1 - v)·x0) / √v."""
    image_size = clean_image.shape[1]
    noisy_images = keras.Input(shape=(image_size, image_size, 3))
    noise_variances = keras.Input(shape=(1, 1, 1))
    outputs = layers.Lambda(
        lambda inputs: (inputs[0] - ops.sqrt(1.0 - inputs[1]) * clean_image)
        / ops.sqrt(inputs[1])
    )([noisy_images, noise_variances])
    return keras.Model([noisy_images, noise_variances], outputs, name=name)


def image_oracle_network(clean_image, name="image_oracle"):
    """Knows the clean image x0 and predicts it, whatever the input."""
    image_size = clean_image.shape[1]
    noisy_images = keras.Input(shape=(image_size, image_size, 3))
    noise_variances = keras.Input(shape=(1, 1, 1))
    outputs = layers.Lambda(lambda inputs: 0.0 * inputs[0] + clean_image)(
        [noisy_images, noise_variances])
    return keras.Model([noisy_images, noise_variances], outputs, name=name)


def probe_schedule(self, diffusion_times):
    """Log-SNR linear in t: signal² = sigmoid(λ), noise² = sigmoid(-λ), so signal² + noise² = 1."""
    log_snr = PROBE_START_LOG_SNR + ops.cast(diffusion_times, "float32") * (
        PROBE_END_LOG_SNR - PROBE_START_LOG_SNR)
    return ops.sqrt(ops.sigmoid(-log_snr)), ops.sqrt(ops.sigmoid(log_snr))


def probe_times(noise_rates, signal_rates):
    """The diffusion times at which `probe_schedule` gives these rates (inverse of λ(t))."""
    log_snr = np.log(np.square(signal_rates, dtype=np.float64)) - np.log(
        np.square(noise_rates, dtype=np.float64))
    return (log_snr - PROBE_START_LOG_SNR) / (PROBE_END_LOG_SNR - PROBE_START_LOG_SNR)


def probe_denoise(self, noisy_images, noise_rates, signal_rates, training):
    """Image prediction: the stand-in predicts x̂0, then ε̂ = (x − s·x̂0) / n (another
    parametrisation than the assignment's, so the sampler is tested on its own)."""
    network = self.network if training else self.ema_network
    pred_images = network([noisy_images, noise_rates**2])
    pred_noises = (noisy_images - signal_rates * pred_images) / noise_rates
    return pred_noises, pred_images


def to_numpy(value):
    return np.asarray(ops.convert_to_numpy(value))


def probe_model(config, methods, network, ema_network):
    """A DiffusionModel with the given methods whose networks are the stand-ins."""
    model = type("Probe", (DiffusionModel,), dict(methods))(config, seed=0)
    model.network = network
    model.ema_network = ema_network
    return model


def probe_inputs(config):
    """The fixed inputs of the denoise and sampler probes, the same on both sides."""
    rng = np.random.default_rng(PROBE_SEED)
    size = config.image_size
    clean_image = rng.standard_normal((1, size, size, 3)).astype("float32")
    noises = rng.standard_normal((len(DENOISE_NOISE_RATES), size, size, 3)).astype("float32")
    signal_rates = np.sqrt(1.0 - DENOISE_NOISE_RATES**2)
    return {
        "clean_image": clean_image,
        "noises": noises,
        "noise_rates": DENOISE_NOISE_RATES,
        "signal_rates": signal_rates,
        "noisy_images": signal_rates * clean_image + DENOISE_NOISE_RATES * noises,
        "initial_noise": rng.standard_normal((NUM_SAMPLER_IMAGES, size, size, 3)).astype(
            "float32"),
    }


def stand_in_networks(config):
    size = config.image_size
    return (affine_network(size, *TRAINING_NETWORK_GAINS, name="probe_network"),
            affine_network(size, *EMA_NETWORK_GAINS, name="probe_ema_network"))


def schedule_probe_config(config, bounds):
    """The course's configuration, or the same with OTHER_SIGNAL_RATE_BOUNDS."""
    return config if bounds == "course" else config.replace(**OTHER_SIGNAL_RATE_BOUNDS)


def schedule_probe(diffusion_schedule, config):
    """A model with this schedule, and the probe times as its argument."""
    model = probe_model(config, {"diffusion_schedule": diffusion_schedule},
                        *stand_in_networks(config))
    return model, ops.convert_to_tensor(SCHEDULE_TIMES)


def denoise_probe(denoise, config, oracle):
    """A model with this denoise and the affine stand-ins (or the noise oracle as both
    networks), and its arguments (noisy_images, noise_rates, signal_rates)."""
    inputs = probe_inputs(config)
    if oracle:
        network = ema_network = noise_oracle_network(inputs["clean_image"])
    else:
        network, ema_network = stand_in_networks(config)
    model = probe_model(config, {"denoise": denoise}, network, ema_network)
    arguments = [ops.convert_to_tensor(inputs[name])
                 for name in ("noisy_images", "noise_rates", "signal_rates")]
    return model, arguments


def reverse_diffusion_probe(reverse_diffusion, config, oracle):
    """A model with this sampler, the probe schedule and a probe denoise that logs its inputs.

    Returns (model, initial noise, calls): `calls` gets one dict per denoise call.
    """
    calls = []

    def logging_denoise(self, noisy_images, noise_rates, signal_rates, training):
        calls.append({"noisy_images": to_numpy(noisy_images), "noise_rates": to_numpy(noise_rates),
                      "signal_rates": to_numpy(signal_rates), "training": bool(training)})
        return probe_denoise(self, noisy_images, noise_rates, signal_rates, training)

    inputs = probe_inputs(config)
    if oracle:
        network = ema_network = image_oracle_network(inputs["clean_image"])
    else:
        network, ema_network = stand_in_networks(config)
    methods = {"reverse_diffusion": reverse_diffusion, "diffusion_schedule": probe_schedule,
               "denoise": logging_denoise}
    model = probe_model(config, methods, network, ema_network)
    return model, ops.convert_to_tensor(inputs["initial_noise"]), calls


def sampler_runs():
    """(diffusion_steps, oracle) of every sampler probe, named as in the result."""
    runs = {f"probe_steps_{steps}": (steps, False) for steps in REVERSE_DIFFUSION_STEPS}
    runs[f"oracle_steps_{ORACLE_DIFFUSION_STEPS}"] = (ORACLE_DIFFUSION_STEPS, True)
    return runs


# ---- recording outcomes ----------------------------------------------------------------------


class ArrayStore:
    """Collects arrays for result.npz; the JSON holds {"array": key} in their place."""

    def __init__(self):
        self.arrays = {}

    def add(self, value):
        key = f"a{len(self.arrays)}"
        self.arrays[key] = value
        return {"array": key}


def describe_value(value, store):
    """A returned value as JSON: a tensor as an array with its dtype, a tuple item by item."""
    if isinstance(value, (tuple, list)):
        return {"kind": type(value).__name__,
                "items": [describe_value(item, store) for item in value]}
    if value is None or not hasattr(value, "shape"):
        return {"kind": type(value).__name__}
    try:
        array = to_numpy(value)
    except Exception as error:  # a symbolic or exotic object: say what it was
        return {"kind": type(value).__name__, "unreadable": f"{type(error).__name__}: {error}"}
    dtype = keras.backend.standardize_dtype(getattr(value, "dtype", array.dtype))
    if array.dtype.kind not in "biuf":
        return {"kind": type(value).__name__, "dtype": dtype, "shape": list(array.shape)}
    return {"kind": "tensor", "dtype": dtype, "shape": list(array.shape),
            "value": store.add(array)}


def describe_error(error):
    """Type, message, and the line of the student's cell where it was raised (if any)."""
    record = {"type": type(error).__name__, "message": str(error)[:2000]}
    if isinstance(error, SyntaxError) and str(error.filename).startswith("<your "):
        record["where"] = f"line {error.lineno} of {error.filename[1:-1]}: " + (
            error.text or "").strip()
        return record
    student_frames = [frame for frame in traceback.extract_tb(error.__traceback__)
                      if frame.filename.startswith("<your ")]
    if student_frames:
        frame = student_frames[-1]
        record["where"] = f"line {frame.lineno} of {frame.filename[1:-1]}: {frame.line}"
    return record


def compile_cell(source, filename):
    """Compiles a cell as IPython does: its source goes into linecache, so that tracebacks show
    its lines and AutoGraph can read it when it converts the function for tf.function."""
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    return compile(source, filename, "exec")


def _raise_timeout(signum, frame):
    raise FunctionTimeout()


def record_call(record, store, function, *args, **kwargs):
    """Calls `function` and records what it returned, or the error it raised."""
    try:
        returned = function(*args, **kwargs)
    except (Exception, SystemExit) as error:  # sys.exit() in a function is that function's error
        record["error"] = describe_error(error)
        return
    record["returned"] = describe_value(returned, store)


# ---- the two tasks -----------------------------------------------------------------------------


def define_function(preamble, name, source):
    """Runs the setup cell, then the function's cell, in a fresh namespace.

    Returns (function, None), or (None, error) when the cell fails to run or defines no function
    of its name: that costs this function only.
    """
    namespace = {"__name__": "student"}
    try:
        exec(compile_cell(preamble, "<setup cell>"), namespace)
    except Exception as error:
        return None, {"type": "SetupError", "message": f"the setup cell failed in the grader: "
                                                       f"{type(error).__name__}: {error}"}
    try:
        exec(compile_cell(source, f"<your {name} cell>"), namespace)
    except (Exception, SystemExit) as error:
        return None, describe_error(error)
    if not callable(namespace.get(name)):
        return None, {"type": "NameError",
                      "message": f"the cell does not define a function named {name}"}
    return namespace[name], None


def probe_schedule_function(diffusion_schedule, config, store, outcome):
    import tensorflow as tf  # the runner always runs on the TensorFlow backend

    for bounds in ("course", "other"):
        model, times = schedule_probe(diffusion_schedule, schedule_probe_config(config, bounds))
        outcome[bounds] = {"eager": {}, "compiled": {}}
        record_call(outcome[bounds]["eager"], store, model.diffusion_schedule, times)
        # the train step traces the schedule into a graph: numpy calls on tensors fail there
        record_call(outcome[bounds]["compiled"], store, tf.function(model.diffusion_schedule),
                    times)


def probe_denoise_function(denoise, config, store, outcome):
    import tensorflow as tf

    affine_model, arguments = denoise_probe(denoise, config, oracle=False)
    oracle_model, _ = denoise_probe(denoise, config, oracle=True)
    for kind, model in (("affine", affine_model), ("oracle", oracle_model)):
        for training in (True, False):
            record = outcome[f"{kind}_training_{training}"] = {}
            record_call(record, store, model.denoise, *arguments, training=training)
    # as in training, where the train step traces denoise into a graph
    outcome["compiled"] = {}
    record_call(outcome["compiled"], store,
                tf.function(functools.partial(affine_model.denoise, training=True)), *arguments)


def probe_reverse_diffusion_function(reverse_diffusion, config, store, outcome):
    for name, (steps, oracle) in sampler_runs().items():
        model, initial_noise, calls = reverse_diffusion_probe(reverse_diffusion, config, oracle)
        record = outcome[name] = {}
        record_call(record, store, model.reverse_diffusion, initial_noise, steps)
        record["calls"] = [{key: store.add(value) if isinstance(value, np.ndarray) else value
                            for key, value in call.items()} for call in calls]


PROBES = {
    "diffusion_schedule": probe_schedule_function,
    "denoise": probe_denoise_function,
    "reverse_diffusion": probe_reverse_diffusion_function,
}


def run_units(request, config, store):
    """Defines and probes each function in turn, each within FUNCTION_TIME_LIMIT_S."""
    result = {"definition_errors": {}, "probes": {}, "timed_out": []}
    signal.signal(signal.SIGALRM, _raise_timeout)
    for name, source in request["functions"].items():
        deadline = time.monotonic() + FUNCTION_TIME_LIMIT_S
        # after the limit the alarm repeats every second, in case student code swallows it
        signal.setitimer(signal.ITIMER_REAL, FUNCTION_TIME_LIMIT_S, 1.0)
        try:
            function, error = define_function(request["preamble"], name, source)
            if error is None:
                PROBES[name](function, config, store, result["probes"].setdefault(name, {}))
            else:
                result["definition_errors"][name] = error
        except FunctionTimeout:
            result["timed_out"].append(name)
        except Exception:
            # library code (Keras) may turn the alarm into an error of its own
            if time.monotonic() < deadline:
                raise
            result["timed_out"].append(name)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return result


def run_training(request, config, result_dir):
    import tensorflow as tf

    from diffusion_course.checkpoints import save_checkpoint

    functions, errors = {}, {}
    for name in FUNCTION_NAMES:
        functions[name], error = define_function(request["preamble"], name,
                                                 request["functions"][name])
        if error is not None:
            errors[name] = error
    if errors:
        return {"completed": False, "definition_errors": errors}
    seed = request["seed"]
    keras.utils.set_random_seed(seed)
    # bit-identical reruns: the cached reference run and this one may differ only by their code,
    # not by the order in which threads add up a reduction
    tf.config.experimental.enable_op_determinism()
    images = np.load(request["train_images"], allow_pickle=False)["images"]
    num_images = request["steps"] * config.batch_size
    started = time.perf_counter()
    try:
        model = type("StudentDiffusionModel", (DiffusionModel,), functions)(config, seed=seed)
        model.adapt_normalizer(images)
        model.compile()
        history = model.fit(np.resize(images, (num_images, *images.shape[1:])),
                            batch_size=config.batch_size, epochs=1, shuffle=False, verbose=0)
    except Exception as error:
        return {"completed": False, "error": describe_error(error)}
    losses = {name: float(values[-1]) for name, values in history.history.items()}
    save_checkpoint(Path(result_dir) / "checkpoint", model.checkpoint_parts(), config,
                    step=request["steps"], seed=seed, extra={"losses": losses})
    return {"completed": True, "losses": losses,
            "fit_seconds": round(time.perf_counter() - started, 2)}


def main(request_path, result_dir):
    request = json.loads(Path(request_path).read_text())
    config = DDIMConfig.from_dict(request["config"])
    result_dir = Path(result_dir)
    result_dir.mkdir(parents=True, exist_ok=True)
    store = ArrayStore()
    if request["task"] == "units":
        result = run_units(request, config, store)
    else:
        result = run_training(request, config, result_dir)
    result["task"] = request["task"]
    np.savez(result_dir / "result.npz", **store.arrays)
    (result_dir / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:3])
