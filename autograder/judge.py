"""The judge: grades a submission's three functions and its training run outside its kernel.

A notebook kernel cannot grade itself: the student's code runs in it and can replace anything
the tests call (autograder/README.md, "Threat model", and the cheat-* samples). So the trusted
nbgrader preprocessor (`verdict.py`) takes the student's cells from the notebook's JSON and
calls

    verdicts = grade({"diffusion_schedule": ..., "denoise": ..., "reverse_diffusion": ...},
                     preamble=setup_cell_source)
    verdicts["test_denoise"]   # Verdict(passed=False, score_fraction=0.583, message="...")

The layout shows the trust boundary:
- `runner/` runs student code: `student_runner.py` inside the sandbox, started and read by
  `launch.py`, which also tells a student's fault (RunnerFailure) from the grader's (GraderError);
- `verdicts/` decides: each test cell's checks, against the solution's outputs on the same
  probes, computed here;
- `grader_state/` is trusted state: the training-run evaluation and its private cache.

This module only orchestrates: it starts the runners at once and in parallel (the probes, and a
training run of the student's functions in case they all pass), judges the probes, trains with
the solution's function for any that failed, and judges the training run. A fault of the
grader raises GraderError: it is never turned into a verdict against the student.
"""

import atexit
import json
import shutil
import tempfile
from pathlib import Path

from autograder import FUNCTION_NAMES
from autograder.assignment.forbidden_imports import FORBIDDEN_MODULES, RULE, forbidden_imports
from autograder.assignment.solution_cells import setup_source
from autograder.assignment.variant_solutions import solution_sources_for
from autograder.errors import GraderError
from autograder.grader_state.cache import default_cache_dir
from autograder.grader_state.evaluation import TRAIN_IMAGES_SEED, Evaluator, UnusableWeights
from autograder.runner.launch import RunnerFailure, RunnerProcess
from autograder.runner.notebook_pass import what_runs
from autograder.verdicts import TEST_CELLS, TRAINING_TEST_CELL, judge_units
from autograder.verdicts.checks import Unusable, Verdict, error_text
from autograder.verdicts.solution_outputs import solution_outputs
from autograder.verdicts.training import functions_used, judge_training, training_setup
from diffusion_course.config import default_profile
from diffusion_course.variants import assignment_config

UNITS_TIMEOUT_S = 400  # three functions of at most FUNCTION_WALL_LIMIT_S each, and start-up
UNANSWERED = "raise NotImplementedError()"


def as_program(name, cells):
    """A function's cells as the runner takes them; a plain source is the answer cell alone."""
    if cells is None:
        cells = f"def {name}(self, *args):\n    {UNANSWERED}\n"
    if isinstance(cells, str):
        return [{"label": f"{name} cell", "source": cells, "own": True}]
    return list(cells)


class _Session:
    """The runner processes of one grading, in one private folder; `close` stops them all."""

    live = set()  # closed at exit, so that no runner outlives an interrupted grading

    def __init__(self, timeout):
        self.folder = Path(tempfile.mkdtemp(prefix="ddim-grade-"))  # mode 0700
        self.timeout = timeout
        self.runs = []
        self.live.add(self)

    def start(self, request, what, default_timeout, secret=False):
        run = RunnerProcess(request, what, self.timeout or default_timeout, self.folder,
                            secret=secret)
        self.runs.append(run)
        return run

    def close(self):
        for run in self.runs:
            run.cancel()
        shutil.rmtree(self.folder, ignore_errors=True)
        self.live.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.close()


atexit.register(lambda: [session.close() for session in list(_Session.live)])


class _TrainingRuns:
    """Training runs keyed by what they train (preamble and `what_runs(programs)`).

    The runs are deterministic, so each is run at most once and its metrics are cached: the
    solution run, and any submission whose training programs equal one trained before (every
    submission whose failed functions were replaced by the solution's, and whose others are
    the solution's text, trains exactly the solution).
    """

    def __init__(self, session, evaluator):
        self.session = session
        self.evaluator = evaluator
        self.running = {}

    @staticmethod
    def _run(preamble, programs):
        return {"kind": "trained", "preamble": preamble,
                "programs": what_runs(preamble, programs)}

    def _key(self, preamble, programs):
        return json.dumps(self._run(preamble, programs), sort_keys=True)

    def cached(self, preamble, programs):
        """Whether the metrics of these programs' run are cached."""
        return self.evaluator.cached(self._run(preamble, programs)) is not None

    def needed(self, preamble, programs):
        """Whether these programs are neither cached nor running already."""
        return (self._key(preamble, programs) not in self.running
                and not self.cached(preamble, programs))

    def request(self, programs):
        """The "training" part of a runner request that trains these programs."""
        evaluator = self.evaluator
        return {"config": evaluator.config.to_dict(), "programs": programs,
                "seed": evaluator.seed, "steps": evaluator.budget.steps,
                "num_train_images": evaluator.budget.num_train_images,
                "images_seed": TRAIN_IMAGES_SEED}

    def adopt(self, preamble, programs, run):
        """Counts `run` (started with `request(programs)` as its training part) as their run."""
        self.running[self._key(preamble, programs)] = run

    def start(self, preamble, programs, secret=False):
        """Starts the run unless it is cached or running already.

        secret: the programs hold solution code, so nothing the run prints or raises may reach
        the student's feedback.
        """
        if self.needed(preamble, programs):
            self.adopt(preamble, programs, self.session.start(
                {"config": self.evaluator.config.to_dict(), "preamble": preamble,
                 "training": self.request(programs)},
                "training run", self.evaluator.budget.timeout_s, secret=secret))

    def cancel(self, preamble, programs):
        run = self.running.pop(self._key(preamble, programs), None)
        if run is not None:
            run.cancel()

    def metrics(self, preamble, programs, who, secret=False):
        """The run's metrics (measured here), or `Unusable` saying why there are none."""
        cached = self.evaluator.cached(self._run(preamble, programs))
        if cached is not None:
            return cached
        self.start(preamble, programs, secret)
        run = self.running.pop(self._key(preamble, programs))
        run.what = "training run"  # a units run that trains afterwards is in its second part
        try:
            result = run.wait_for("training")
        except RunnerFailure as failure:
            raise Unusable(f"{who} training run failed: {failure}") from None
        try:
            self._check_completed(result, who, secret)
            metrics = self.evaluator.weights_metrics(result["weights"])
        except (KeyError, TypeError, AttributeError, UnusableWeights) as error:
            # the result was written by a process that student code controlled
            raise Unusable(f"{who} training run sent unusable weights ({error})") from None
        return self.evaluator.store(self._run(preamble, programs), metrics)

    @staticmethod
    def _check_completed(result, who, secret):
        if result["completed"] is True:
            return
        if secret:
            raise Unusable(f"training with {who} functions failed (its messages are withheld: "
                           "the run held solution code)")
        if "error" in result:
            raise Unusable(f"training with {who} functions {error_text(result['error'])}. "
                           "The train step runs them inside tf.function")
        errors = "; ".join(f"{name} {error_text(error)}"
                           for name, error in result["definition_errors"].items())
        raise Unusable(f"{who} training run could not define the functions: {errors}")


def _solution_programs(config):
    """The solution of the config's variant, as programs."""
    return {name: as_program(name, source) for name, source in solution_sources_for(config).items()}


def grade(functions, preamble, config=None, seed=0, timeout=None, cache_dir=None):
    """Grades one submission; returns {test cell grade_id: Verdict}, or raises GraderError.

    functions: {"diffusion_schedule" | "denoise" | "reverse_diffusion": the source of its
        answer cell, or its program (the cells to run, see `runner/recording.py`)}; a missing
        name counts as a cell that still raises NotImplementedError.
    preamble: the notebook's setup cell (imports), run before each function's cells.
    config: the DDIMConfig to grade with (default: the machine's default profile, with the
        course's variant, variants.assignment_config); its profile
        picks the training budget, verdicts.training.TRAINING_BUDGETS[config.profile].
    seed: seeds the training runs; the solution's run uses the same one.
    timeout: seconds for each runner process (default: UNITS_TIMEOUT_S for the probes and the
        budget's timeout_s for a training run).
    cache_dir: where the solution and untrained metrics are kept (default_cache_dir()).
    """
    config = config or assignment_config(default_profile())
    training_config, budget = training_setup(config)
    programs = {name: as_program(name, functions.get(name)) for name in FUNCTION_NAMES}
    with _Session(timeout) as session:
        evaluator = Evaluator(training_config, budget, seed, cache_dir or default_cache_dir())
        trainings = _TrainingRuns(session, evaluator)
        units_request = {"config": config.to_dict(), "preamble": preamble, "programs": programs}
        # a submission that answers every cell most likely passes all three tests: the units
        # runner then trains its functions right after the probes (one TensorFlow start-up
        # fewer), and that training is cancelled if a test fails
        speculative = (not any(UNANSWERED in cell["source"] for program in programs.values()
                               for cell in program if cell["own"])
                       and trainings.needed(preamble, programs))
        units_timeout = UNITS_TIMEOUT_S
        if speculative:
            units_request["training"] = trainings.request(programs)
            units_timeout += budget.timeout_s
        units_run = session.start(units_request, "units run", units_timeout)
        if speculative:
            trainings.adopt(preamble, programs, units_run)
        trainings.start(setup_source(), _solution_programs(config))
        expected = solution_outputs(config, evaluator.cache.folder)
        untrained = evaluator.untrained_metrics()
        try:
            return _judge(units_run, trainings, config, preamble, programs, expected,
                          untrained, budget)
        finally:
            evaluator.finish_preparing()


def _judge(units_run, trainings, config, preamble, programs, expected, untrained, budget):
    """The verdicts of the four test cells, once the runners report (see `grade`)."""
    verdicts, passed = _unit_verdicts(units_run, config, programs, expected)
    training_programs = {name: programs[name] if passed[name] else
                         _solution_programs(config)[name] for name in FUNCTION_NAMES}
    if training_programs != programs:
        trainings.cancel(preamble, programs)
    if not any(passed.values()):
        verdicts[TRAINING_TEST_CELL] = Verdict(
            False, 0.0, "training: none of your three functions passed its test, so there "
                        "is nothing of yours to train. Fix them first.")
        return verdicts
    if not trainings.cached(preamble, training_programs):
        # TensorFlow's import and the KID encoder while the runner trains, not after it (not
        # before the probes' verdicts either: a failed test cancels the speculative training,
        # and the training of the solution's functions in their place is mostly cached)
        trainings.evaluator.prepare_in_background()
    solution = _solution_metrics(trainings, config)
    try:
        student = trainings.metrics(preamble, training_programs, "your",
                                    secret=not all(passed.values()))
    except Unusable as problem:
        verdicts[TRAINING_TEST_CELL] = Verdict(False, 0.0, f"training: {problem}")
        return verdicts
    verdicts[TRAINING_TEST_CELL] = judge_training(student, solution, untrained, budget,
                                                  functions_used(passed))
    return verdicts


def _solution_metrics(trainings, config):
    try:
        return trainings.metrics(setup_source(), _solution_programs(config), "the solution")
    except Unusable as problem:
        raise GraderError(f"the solution training run failed: {problem}") from None


def _forbidden_import_verdict(name, program):
    modules = forbidden_imports("\n".join(cell["source"] for cell in program))
    if not modules:
        return None
    masked = ", ".join(f"diffusion_course.{module}" for module in FORBIDDEN_MODULES)
    return Verdict(False, 0.0, f"{name}: your code imports {', '.join(modules)}, but {RULE}: "
                               f"the graded run cannot import the library's design-space modules "
                               f"({masked}). Write {name} yourself")


def _unit_verdicts(units_run, config, programs, expected):
    """({test cell: Verdict}, {function name: passed}) of the three function tests."""
    try:
        by_function = judge_units(units_run.wait_for("units"), config, expected)
    except RunnerFailure as failure:
        by_function = {name: Verdict(False, 0.0, f"{name}: {failure}") for name in FUNCTION_NAMES}
    for name, program in programs.items():
        by_function[name] = _forbidden_import_verdict(name, program) or by_function[name]
    return ({TEST_CELLS[name]: verdict for name, verdict in by_function.items()},
            {name: verdict.passed for name, verdict in by_function.items()})


def measure_solution_spread(config, seeds, cache_dir=None, timeout=None):
    """{seed: metrics} of the solution trained with each seed: the spread behind the margins.

    Each run is cached like a grading's solution run, so grading with one of these seeds later
    reuses it. Run it on the machine that grades, for each profile, before trusting the margins.
    """
    training_config, budget = training_setup(config)
    with _Session(timeout) as session:
        return {seed: _solution_metrics(_TrainingRuns(session, Evaluator(
                    training_config, budget, seed, cache_dir or default_cache_dir())), config)
                for seed in seeds}
