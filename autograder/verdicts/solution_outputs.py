"""The solution functions' outputs on the very probes that the student runner uses.

They are computed here, in the trusted process, once per configuration.
"""

from autograder.assignment.solution import solution_functions
from autograder.runner import stand_ins

_solution_outputs_by_config = {}


def solution_outputs(config):
    """The solution functions' outputs on the runner's probes (computed once per config)."""
    if config not in _solution_outputs_by_config:
        functions = solution_functions(config)  # those of the config's variant
        outputs = {name: {} for name in stand_ins.FUNCTION_NAMES}
        for bounds in ("course", "other"):
            model, times = stand_ins.schedule_probe(
                functions["diffusion_schedule"],
                stand_ins.schedule_probe_config(config, bounds))
            outputs["diffusion_schedule"][bounds] = [
                stand_ins.to_numpy(rates) for rates in model.diffusion_schedule(times)]
        model, arguments = stand_ins.denoise_probe(functions["denoise"], config,
                                                   oracle=False)
        for training in (True, False):
            outputs["denoise"][training] = [
                stand_ins.to_numpy(value)
                for value in model.denoise(*arguments, training=training)]
        for name, (steps, oracle) in stand_ins.sampler_runs().items():
            model, initial_noise, calls = stand_ins.reverse_diffusion_probe(
                functions["reverse_diffusion"], config, oracle)
            final = stand_ins.to_numpy(model.reverse_diffusion(initial_noise, steps))
            outputs["reverse_diffusion"][name] = {"final": final, "calls": calls,
                                                  "model": model}
        _solution_outputs_by_config[config] = outputs
    return _solution_outputs_by_config[config]
