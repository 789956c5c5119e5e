"""What decides verdicts: the runner's records, judged against the solution, in the trusted
process. One module per graded test cell; `judge_units` gives the three function verdicts."""

from autograder import FUNCTION_NAMES, TEST_CELLS, TRAINING_TEST_CELL
from autograder.errors import GraderError
from autograder.runner.probe_values import FUNCTION_CPU_LIMIT_S, FUNCTION_WALL_LIMIT_S
from autograder.verdicts.checks import Unusable, Verdict, error_text
from autograder.verdicts.denoise import judge_denoise
from autograder.verdicts.sampler import judge_reverse_diffusion
from autograder.verdicts.schedule import judge_schedule

__all__ = ["TEST_CELLS", "TRAINING_TEST_CELL", "judge_units"]
UNIT_JUDGES = {
    "diffusion_schedule": judge_schedule,
    "denoise": judge_denoise,
    "reverse_diffusion": judge_reverse_diffusion,
}


def judge_units(result, config, expected):
    """{function name: Verdict} from the units runner's result, against `expected`, the
    solution's outputs on the same probes (GraderError if the machine starved the run)."""
    starved = result.get("starved") if isinstance(result, dict) else None
    if starved:
        raise GraderError(f"the machine starved the units run: {', '.join(map(str, starved))} "
                          f"ran out of time while waiting for a CPU longer than it ran")
    verdicts, remarked = {}, set()
    for name in FUNCTION_NAMES:
        verdict = _unit_verdict(name, result, expected[name], config)
        notes = _extra_cell_notes(result, name) if not verdict.passed else ""
        verdicts[name] = Verdict(verdict.passed, verdict.score_fraction,
                                 verdict.message + notes + _remarks(result, name, remarked))
    return verdicts


def _unit_verdict(name, result, solution, config):
    try:
        if name in result["timed_out"]:
            return Verdict(False, 0.0, f"{name}: its cells and its probes used more than "
                                       f"{FUNCTION_CPU_LIMIT_S} s of CPU time or "
                                       f"{FUNCTION_WALL_LIMIT_S} s in all, and were stopped (an "
                                       f"endless loop?); a correct function takes well under a "
                                       f"second")
        if name in result["definition_errors"]:
            error = error_text(result["definition_errors"][name])
            return Verdict(False, 0.0, f"{name}: its cell {error}")
        return UNIT_JUDGES[name](result["probes"][name], solution, config)
    except Unusable as problem:
        return Verdict(False, 0.0, f"{name}: {problem}")
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as error:
        # the result was written by a process that student code controlled
        return Verdict(False, 0.0, f"{name}: the grader could not read its results "
                                   f"({type(error).__name__}: {error})")


def _notes(result, name):
    notes = result.get("notes", {}).get(name) if isinstance(result, dict) else None
    return [note for note in notes if isinstance(note, dict)] if isinstance(notes, list) else []


def _extra_cell_notes(result, name):
    """What the student's own extra cells raised before this function was defined: the cell,
    and its error at the line where it was raised."""
    try:
        return "".join([f"\n(Note: {note['label']} {error_text(note['error'])}; the grader "
                        f"skipped that cell, as the notebook went on after it.)"
                        for note in _notes(result, name) if "error" in note][:5])
    except (KeyError, TypeError, AttributeError):
        return ""


def _remarks(result, name, remarked):
    """What the grader did not run of the student's magics (said once, on the first function
    whose cells had them)."""
    new = [str(note["remark"])[:300] for note in _notes(result, name)
           if "remark" in note and str(note["remark"]) not in remarked]
    remarked.update(new)
    return "".join(f"\n(Note: {remark}.)" for remark in new[:5])
