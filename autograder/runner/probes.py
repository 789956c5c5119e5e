"""Task "units" of the student runner: each function probed on its own, its outputs recorded.

Every other part of the model is a known stand-in (`stand_ins.py`), so one mistake costs one
function only. Each function (its cells and its probes) has its own time limits (see
`run_units`): an endless loop costs only the function that has it.
"""

import functools
import signal
import time
from pathlib import Path

import numpy as np

from autograder.runner import stand_ins
from autograder.runner.notebook_pass import define_function, submission_pass
from autograder.runner.probe_values import FUNCTION_CPU_LIMIT_S, FUNCTION_WALL_LIMIT_S
from autograder.runner.recording import record_call


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


PROBES = {
    "diffusion_schedule": probe_schedule_function,
    "denoise": probe_denoise_function,
    "reverse_diffusion": probe_reverse_diffusion_function,
}


def _raise_timeout(signum, frame):
    raise FunctionTimeout(signum)


def _schedstat_seconds():
    """(CPU time, time runnable but waiting for a CPU) of this process's threads so far."""
    running = waiting = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "schedstat").read_text().split()
            running, waiting = running + int(fields[0]), waiting + int(fields[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that just ended
    return running / 1e9, waiting / 1e9


def _out_of_time(started, alarm):
    """Why a function ran out of time: "timed_out" (its own doing: it used up its CPU time, or
    it blocked) or "starved" (the machine's: at the wall limit, its threads had waited for a CPU
    longer than they ran)."""
    if alarm == signal.SIGPROF:
        return "timed_out"
    running, waiting = (now - before for now, before in zip(_schedstat_seconds(), started))
    return "starved" if waiting > running else "timed_out"


def run_units(request, config, store, on_student_code):
    """Defines and probes each function in turn, each within its time limits.

    A function may use FUNCTION_CPU_LIMIT_S of CPU time (an endless loop reaches it whatever
    the load) and FUNCTION_WALL_LIMIT_S of wall time (for code that blocks). One that runs out
    of time is "timed_out", the student's fault, unless its threads waited for a CPU longer
    than they ran: then the machine starved it, and it is "starved", the grader's.
    """
    result = {"definition_errors": {}, "probes": {}, "timed_out": [], "starved": [],
              "notes": {}}
    for alarm in (signal.SIGALRM, signal.SIGPROF):
        signal.signal(alarm, _raise_timeout)
    notebook = submission_pass(request["preamble"], request["programs"], on_student_code)
    for name, program in request["programs"].items():
        started = _schedstat_seconds()
        deadline = time.monotonic() + FUNCTION_WALL_LIMIT_S
        cpu_deadline = time.process_time() + FUNCTION_CPU_LIMIT_S
        # after a limit the alarm repeats every second, in case student code swallows it
        signal.setitimer(signal.ITIMER_PROF, FUNCTION_CPU_LIMIT_S, 1.0)
        signal.setitimer(signal.ITIMER_REAL, FUNCTION_WALL_LIMIT_S, 1.0)
        try:
            function, error, result["notes"][name] = define_function(
                request["preamble"], name, program, notebook)
            if error is None:
                PROBES[name](function, config, store, result["probes"].setdefault(name, {}))
            else:
                result["definition_errors"][name] = error
        except FunctionTimeout as timeout:
            result[_out_of_time(started, timeout.args[0])].append(name)
        except Exception:
            # library code (Keras) may turn the alarm into an error of its own
            if time.monotonic() < deadline and time.process_time() < cpu_deadline:
                raise
            alarm = signal.SIGPROF if time.process_time() >= cpu_deadline else signal.SIGALRM
            result[_out_of_time(started, alarm)].append(name)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.setitimer(signal.ITIMER_PROF, 0)
    return result
