"""Task "units" of the student runner: each function probed on its own, its outputs recorded.

Every other part of the model is a known stand-in (`stand_ins.py`), so one mistake costs one
function only. Each function (its cells and its probes) has FUNCTION_TIME_LIMIT_S: an endless
loop costs only the function that has it.
"""

import functools
import signal
import threading
import time

import numpy as np

from autograder.runner import stand_ins
from autograder.runner.recording import define_function, record_call

FUNCTION_TIME_LIMIT_S = 30
STARVED_FRACTION = 0.5  # waiting this share of the limit for a CPU is the machine's fault


class FunctionTimeout(BaseException):
    """A function's cells and probes ran longer than FUNCTION_TIME_LIMIT_S in total.

    Not an Exception, so that neither the probes nor a student's `except Exception` catch it.
    """


def probe_schedule_function(diffusion_schedule, config, store, outcome):
    import tensorflow as tf  # the runner always runs on the TensorFlow backend

    for bounds in ("course", "other"):
        model, times = stand_ins.schedule_probe(
            diffusion_schedule, stand_ins.schedule_probe_config(config, bounds))
        outcome[bounds] = {"eager": {}, "compiled": {}}
        record_call(outcome[bounds]["eager"], store, model.diffusion_schedule, times)
        # the train step traces the schedule into a graph: numpy calls on tensors fail there
        record_call(outcome[bounds]["compiled"], store, tf.function(model.diffusion_schedule),
                    times)


def probe_denoise_function(denoise, config, store, outcome):
    import tensorflow as tf

    affine_model, arguments = stand_ins.denoise_probe(denoise, config, oracle=False)
    oracle_model, _ = stand_ins.denoise_probe(denoise, config, oracle=True)
    for kind, model in (("affine", affine_model), ("oracle", oracle_model)):
        for training in (True, False):
            record = outcome[f"{kind}_training_{training}"] = {}
            record_call(record, store, model.denoise, *arguments, training=training)
    # as in training, where the train step traces denoise into a graph
    outcome["compiled"] = {}
    record_call(outcome["compiled"], store,
                tf.function(functools.partial(affine_model.denoise, training=True)), *arguments)


def probe_reverse_diffusion_function(reverse_diffusion, config, store, outcome):
    for name, (steps, oracle) in stand_ins.sampler_runs().items():
        model, initial_noise, calls = stand_ins.reverse_diffusion_probe(reverse_diffusion,
                                                                        config, oracle)
        record = outcome[name] = {}
        record_call(record, store, model.reverse_diffusion, initial_noise, steps)
        record["calls"] = [{key: store.add(value) if isinstance(value, np.ndarray) else value
                            for key, value in call.items()} for call in calls]


def _why_out_of_time(waited_before):
    waited = _seconds_waiting_for_a_cpu() - waited_before
    return "starved" if waited > STARVED_FRACTION * FUNCTION_TIME_LIMIT_S else "timed_out"


PROBES = {
    "diffusion_schedule": probe_schedule_function,
    "denoise": probe_denoise_function,
    "reverse_diffusion": probe_reverse_diffusion_function,
}


def _raise_timeout(signum, frame):
    raise FunctionTimeout()


def _seconds_waiting_for_a_cpu():
    """How long this thread was runnable but not running (Linux schedstat run_delay)."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as schedstat:
            return int(schedstat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def run_units(request, config, store, on_student_code):
    """Defines and probes each function in turn, each within FUNCTION_TIME_LIMIT_S.

    A function that runs out of time is "timed_out" (the student's), unless the machine kept it
    waiting for a CPU for most of that time: then it is "starved" (the grader's).
    """
    result = {"definition_errors": {}, "probes": {}, "timed_out": [], "starved": [],
              "notes": {}}
    signal.signal(signal.SIGALRM, _raise_timeout)
    for name, program in request["programs"].items():
        deadline = time.monotonic() + FUNCTION_TIME_LIMIT_S
        waited = _seconds_waiting_for_a_cpu()
        # after the limit the alarm repeats every second, in case student code swallows it
        signal.setitimer(signal.ITIMER_REAL, FUNCTION_TIME_LIMIT_S, 1.0)
        try:
            function, error, result["notes"][name] = define_function(
                request["preamble"], name, program, on_student_code)
            if error is None:
                PROBES[name](function, config, store, result["probes"].setdefault(name, {}))
            else:
                result["definition_errors"][name] = error
        except FunctionTimeout:
            result[_why_out_of_time(waited)].append(name)
        except Exception:
            # library code (Keras) may turn the alarm into an error of its own
            if time.monotonic() < deadline:
                raise
            result[_why_out_of_time(waited)].append(name)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return result


