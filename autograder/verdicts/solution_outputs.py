"""The solution functions' outputs on the very probes that the student runner uses.

They are computed here, in the trusted process, with TensorFlow: once per configuration and
code, then kept in the grader's private cache as raw arrays, so that a later grading (another
process, another student) reads them without starting TensorFlow.
"""

import base64
from pathlib import Path

import numpy as np

from autograder import FUNCTION_NAMES
from autograder.assignment.solution_cells import SOLUTION_SOURCE_FILES
from autograder.grader_state.cache import MetricsCache, code_hash, keras_identity

# the outputs of a 64-pixel configuration take about 2 MB as base64
MAX_OUTPUTS_BYTES = 32 * 2**20

_solution_outputs_by_config = {}


def solution_outputs(config, cache_dir):
    """{function name: outputs} of the solution functions on the runner's probes."""
    if config not in _solution_outputs_by_config:
        cache = MetricsCache(cache_dir, max_entry_bytes=MAX_OUTPUTS_BYTES)
        description = {"kind": "solution-outputs", "config": config.to_dict(), **keras_identity(),
                       "code": code_hash([*SOLUTION_SOURCE_FILES, Path(__file__)])}
        encoded = cache.get(description)
        if encoded is None:
            encoded = cache.put(description, _encode(_computed(config)))
        _solution_outputs_by_config[config] = _decode(encoded)
    return _solution_outputs_by_config[config]


def _computed(config):
    from autograder.assignment.solution import solution_functions
    from autograder.runner import stand_ins

    functions = solution_functions(config)  # those of the config's variant
    outputs = {name: {} for name in FUNCTION_NAMES}
    for bounds in ("course", "other"):
        model, times = stand_ins.schedule_probe(
            functions["diffusion_schedule"], stand_ins.schedule_probe_config(config, bounds))
        outputs["diffusion_schedule"][bounds] = [
            stand_ins.to_numpy(rates) for rates in model.diffusion_schedule(times)]
    model, arguments = stand_ins.denoise_probe(functions["denoise"], config, oracle=False)
    for training in (True, False):
        outputs["denoise"][training] = [
            stand_ins.to_numpy(value) for value in model.denoise(*arguments, training=training)]
    for name, (steps, oracle) in stand_ins.sampler_runs().items():
        model, initial_noise, calls = stand_ins.reverse_diffusion_probe(
            functions["reverse_diffusion"], config, oracle)
        final = stand_ins.to_numpy(model.reverse_diffusion(initial_noise, steps))
        # the verdict compares only the first call's noisy images (the initial noise)
        calls = [call if step == 0 else {key: value for key, value in call.items()
                                         if key != "noisy_images"}
                 for step, call in enumerate(calls)]
        outputs["reverse_diffusion"][name] = {"final": final, "calls": calls}
    return outputs


def _encode(value):
    """Arrays, dicts (with bool or str keys), lists and scalars as JSON, arrays as raw bytes."""
    if isinstance(value, np.ndarray):
        return {"array": base64.b64encode(np.ascontiguousarray(value).tobytes()).decode(),
                "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, dict):
        return {"dict": [[key, _encode(item)] for key, item in value.items()]}
    if isinstance(value, (list, tuple)):
        return {"list": [_encode(item) for item in value]}
    return {"value": value}


def _decode(encoded):
    if "array" in encoded:
        return np.frombuffer(base64.b64decode(encoded["array"]),
                             dtype=np.dtype(encoded["dtype"])).reshape(encoded["shape"]).copy()
    if "dict" in encoded:
        return {key: _decode(item) for key, item in encoded["dict"]}
    if "list" in encoded:
        return [_decode(item) for item in encoded["list"]]
    return encoded["value"]
