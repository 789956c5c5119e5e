"""The student runner: the one process that runs a student's functions for the judge.

This is the untrusted side of the autograder. The judge (`launch.py`) starts it inside the
sandbox, with the student's uid, as

    python -I -c "...; from autograder.runner.student_runner import main; main()"

and only this folder (`autograder/runner/`) and the library are visible to it: no solution
code is in this process, so a student's code can do anything here except read the solution or
decide a verdict. It writes raw outputs and judges nothing. A student function that raises is
data, not a crash: its error is recorded and the exit status stays 0.

The request comes on stdin, one JSON object:

    config      DDIMConfig.to_dict()
    preamble    the notebook's setup cell (imports), run before each function's cells
    programs    {"diffusion_schedule" | "denoise" | "reverse_diffusion": [cell, ...]}, each
                cell {"label", "source", "own", "index", "release"} (see notebook_pass.py);
                "units" probes them
    training    null, or {"config", "programs", "seed", "steps", "num_train_images",
                "images_seed"}: a seeded training run of these programs on synthetic flowers,
                after the probes when both are asked for (one TensorFlow start-up for both)

The results go back over stdout, a pipe the judge owns, as `channel.py` messages, in order:
"ready" (imports done, no student code run yet), "student_code" (just before the first cell
of the student runs), "progress" (a sign of life, at most one a second), "units" (the probes'
records), "training" (losses and weights), or "runner_error" when the runner's own code failed.
Whatever student code prints goes to stderr.
"""

import json
import os
import sys
import time
import traceback

import keras
import numpy as np

from autograder.runner.channel import ArrayStore, write_message
from autograder.runner.notebook_pass import define_function, submission_pass
from autograder.runner.probes import run_units
from autograder.runner.recording import describe_error
from diffusion_course.config import DDIMConfig
from diffusion_course.ddim import DiffusionModel
from diffusion_course.synthetic import synthetic_flowers

MAX_REQUEST_BYTES = 16 * 2**20


class _Channel:
    """stdout, kept for messages; fd 1 is pointed at stderr so that prints cannot corrupt it."""

    def __init__(self):
        self.stream = os.fdopen(os.dup(1), "wb")
        os.dup2(2, 1)
        self.student_code_ran = False
        self.last_progress = 0.0

    def send(self, body, store=None):
        write_message(self.stream, body, store)

    def on_student_code(self):
        if not self.student_code_ran:
            self.student_code_ran = True
            self.send({"event": "student_code"})
        self.progress()

    def progress(self):
        """A sign of life (at most one a second): the judge tells a slow run from a stuck one."""
        if time.monotonic() - self.last_progress > 1.0:
            self.last_progress = time.monotonic()
            self.send({"event": "progress"})


def run_training(request, preamble, config, channel):
    """Trains the programs' functions; returns (result, store with the weights)."""
    import tensorflow as tf  # the runner always runs on the TensorFlow backend

    functions, errors, store = {}, {}, ArrayStore()
    notebook = submission_pass(preamble, request["programs"], channel.on_student_code)
    for name, program in request["programs"].items():
        functions[name], error, _ = define_function(preamble, name, program, notebook)
        if error is not None:
            errors[name] = error
    if errors:
        return {"completed": False, "definition_errors": errors}, store
    seed = request["seed"]
    # the same start as every other training run, whatever ran in this process before
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    # bit-identical reruns: the cached solution run and this one may differ only by their code,
    # not by the order in which threads add up a reduction
    tf.config.experimental.enable_op_determinism()
    images = synthetic_flowers(request["num_train_images"], config.image_size,
                               request["images_seed"])
    num_images = request["steps"] * config.batch_size
    try:
        model = type("StudentDiffusionModel", (DiffusionModel,), functions)(config, seed=seed)
        model.adapt_normalizer(images)
        model.compile()
        history = model.fit(np.resize(images, (num_images, *images.shape[1:])),
                            batch_size=config.batch_size, epochs=1, shuffle=False, verbose=0,
                            callbacks=[keras.callbacks.LambdaCallback(
                                on_train_batch_end=lambda batch, logs: channel.progress())])
    except Exception as error:
        return {"completed": False, "error": describe_error(error)}, store
    losses = {name: float(values[-1]) for name, values in history.history.items()}
    weights = {part: [store.add(np.asarray(array)) for array in network.get_weights()]
               for part, network in model.checkpoint_parts().items()}
    return {"completed": True, "losses": losses, "weights": weights}, store


def main():
    channel = _Channel()
    channel.send({"event": "ready"})
    try:
        request = json.loads(sys.stdin.buffer.read(MAX_REQUEST_BYTES))
        config = DDIMConfig.from_dict(request["config"])
        if request.get("programs"):
            store = ArrayStore()
            units = run_units(request, config, store, channel.on_student_code)
            channel.send({"event": "units", **units}, store)
        if request.get("training"):
            training = request["training"]
            result, store = run_training(training, request["preamble"],
                                         DDIMConfig.from_dict(training["config"]),
                                         channel)
            channel.send({"event": "training", **result}, store)
    except BaseException as error:  # noqa: BLE001 - reported with its evidence, then exit 1
        channel.send({"event": "runner_error", "error": describe_error(error),
                      "traceback": traceback.format_exc()[-4000:],
                      "student_code_ran": channel.student_code_ran})
        sys.exit(1)


if __name__ == "__main__":
    main()
