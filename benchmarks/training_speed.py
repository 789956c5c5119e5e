"""How much faster does our DDIM training run than the seed's, and does it learn as well?

Both train the same residual U-Net, from the same initial weights, on the same batches in the
same order, for the same number of steps:

- seed-style: the Keras DDIM text's model, written below as printed there: a `train_step` with
  `tf.GradientTape`, the EMA updated weight by weight in a Python loop after the optimizer, and
  `keras.losses.mean_absolute_error` used directly, so the loss is an unreduced (batch, H, W)
  tensor whose gradient is that of the sum (seed defect 3). It runs in a plain `fit` loop with
  TensorFlow's default settings, as the seed did.
- ours: `DiffusionModel` with the reference functions, as `python -m diffusion_course train`
  runs it: the loss reduced to a scalar in `compute_loss`, Keras's own train step, XLA and
  mixed precision as the configuration decides (both on a GPU), deterministic ops, and one
  thread per op for the quick profile on a CPU (`configure_cpu_threads`).

Both run in a plain `fit` that records each step's loss and end time.

TensorFlow fixes its threads when it starts, so every run is a fresh process. Compilation is
not timed: each run first trains `--warmup` steps, then `--steps` timed ones. The ways alternate
`--repeats` times and each way's fastest run counts (this machine is shared). The loss curves
are the last repeat's; the noise each way draws differs, so they agree in trend, not step by
step. `--seed-style-threads ours` gives the seed-style run our threads too, which isolates what
the train step itself gains.

    python benchmarks/training_speed.py --profile quick --steps 300
    python benchmarks/training_speed.py --profile full --steps 100     # on a GPU

Run it from the repository root: both ways use the instructor's functions from `autograder/`.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for autograder/

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

from autograder.assignment.solution import SOLUTION_FUNCTIONS, SolutionDiffusionModel  # noqa: E402
from diffusion_course.cli.common import SWITCH_CHOICES  # noqa: E402
from diffusion_course.config import PROFILES, DDIMConfig  # noqa: E402
from diffusion_course.data import load_ddim_splits  # noqa: E402
from diffusion_course.devices import (  # noqa: E402
    has_gpu,
    resolve_jit_compile,
    resolve_mixed_precision,
)
from diffusion_course.networks import build_residual_unet  # noqa: E402
from diffusion_course.runtime import configure_cpu_threads, make_deterministic  # noqa: E402

CURVE_POINTS = 10  # rows of the loss table


class SeedStyleDiffusionModel(keras.Model):
    """The Keras DDIM text's training code, with the course's schedule and `denoise`."""

    diffusion_schedule = SOLUTION_FUNCTIONS["diffusion_schedule"]
    denoise = SOLUTION_FUNCTIONS["denoise"]

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.normalizer = layers.Normalization()
        self.network = build_residual_unet(config)
        self.ema_network = keras.models.clone_model(self.network)

    def compile(self, **kwargs):
        super().compile(**kwargs)
        self.noise_loss_tracker = keras.metrics.Mean(name="n_loss")
        self.image_loss_tracker = keras.metrics.Mean(name="i_loss")

    @property
    def metrics(self):
        return [self.noise_loss_tracker, self.image_loss_tracker]

    def train_step(self, images):
        config = self.config
        # normalize images to have standard deviation of 1, like the noises
        images = self.normalizer(images, training=True)
        noises = tf.random.normal(shape=(config.batch_size, config.image_size,
                                         config.image_size, 3))
        # sample uniform random diffusion times
        diffusion_times = tf.random.uniform(shape=(config.batch_size, 1, 1, 1), minval=0.0,
                                            maxval=1.0)
        noise_rates, signal_rates = self.diffusion_schedule(diffusion_times)
        # mix the images with noises accordingly
        noisy_images = signal_rates * images + noise_rates * noises

        with tf.GradientTape() as tape:
            # train the network to separate noisy images to their components
            pred_noises, pred_images = self.denoise(noisy_images, noise_rates, signal_rates,
                                                    training=True)
            noise_loss = self.loss(noises, pred_noises)  # used for training
            image_loss = self.loss(images, pred_images)  # only used as metric

        gradients = tape.gradient(noise_loss, self.network.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.network.trainable_weights))

        self.noise_loss_tracker.update_state(noise_loss)
        self.image_loss_tracker.update_state(image_loss)

        # track the exponential moving averages of weights
        for weight, ema_weight in zip(self.network.weights, self.ema_network.weights):
            ema_weight.assign(config.ema * ema_weight + (1 - config.ema) * weight)

        return {metric.name: metric.result() for metric in self.metrics}


class StepRecorder(keras.callbacks.Callback):
    """Each step's noise loss (recovered from `fit`'s running epoch mean) and end time."""

    def __init__(self):
        super().__init__()
        self.losses = []
        self.finished_at = []
        self.running_sum = 0.0

    def on_train_batch_end(self, batch, logs=None):
        running_sum = float(logs["n_loss"]) * (batch + 1)
        self.losses.append(running_sum - self.running_sum)
        self.running_sum = running_sum
        self.finished_at.append(time.perf_counter())


WAYS = ("seed-style", "ours")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=PROFILES, default="quick",
                        help="network and batch size: the DDIMConfig profile (default: quick)")
    parser.add_argument("--steps", type=int, default=300, help="timed steps (default: 300)")
    parser.add_argument("--warmup", type=int, default=20,
                        help="untimed steps first, which compile the step (default: 20)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each way, alternating; the fastest counts (default: 3)")
    parser.add_argument("--jit-compile", choices=tuple(SWITCH_CHOICES), default="auto",
                        help="XLA for our train step (default: auto, as the configuration)")
    parser.add_argument("--mixed-precision", choices=tuple(SWITCH_CHOICES), default="auto",
                        help="float16 compute in our networks (default: auto: on a GPU only)")
    parser.add_argument("--seed-style-threads", choices=("default", "ours"), default="default",
                        help="threads of the seed-style run: TensorFlow's default, as the seed "
                             "ran, or ours (default: default)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--run-way", choices=WAYS, help=argparse.SUPPRESS)  # one run, in a child
    args = parser.parse_args()
    for name in ("steps", "warmup", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1.")
    return args


def batches(config, seed):
    """The same endless stream of training batches for every run."""
    train_images, _ = load_ddim_splits("synthetic", config, seed=seed)
    return train_images.repeat()


def train_seed_style(config, initial_weights, args):
    model = SeedStyleDiffusionModel(config)
    model.normalizer.adapt(batches(config, args.seed).take(10))
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=config.learning_rate,
                                                   weight_decay=config.weight_decay),
                  loss=keras.losses.mean_absolute_error)
    return timed_fit(model, initial_weights, config, args)


def train_ours(config, initial_weights, args):
    model = SolutionDiffusionModel(config, seed=args.seed)
    model.adapt_normalizer(batches(config, args.seed).take(10))
    model.compile()
    return timed_fit(model, initial_weights, config, args)


def timed_fit(model, initial_weights, config, args):
    """(steps per second after the warm-up, noise loss of each timed step) of one `fit`."""
    model.network.set_weights(initial_weights)
    model.ema_network.set_weights(initial_weights)
    # one fit over the warm-up and the timed steps, so that both ways see the same batches
    recorder = StepRecorder()
    model.fit(batches(config, args.seed), steps_per_epoch=args.warmup + args.steps, epochs=1,
              callbacks=[recorder], verbose=0)
    seconds = recorder.finished_at[-1] - recorder.finished_at[args.warmup - 1]
    return args.steps / seconds, recorder.losses[args.warmup:]


def run_way(args):
    """One timed run in this process; prints its speed, losses and setup as JSON."""
    ours = args.run_way == "ours"
    threads_per_op = (configure_cpu_threads(args.profile)
                      if ours or args.seed_style_threads == "ours" else 0)
    config = DDIMConfig.from_profile(args.profile,
                                     jit_compile=SWITCH_CHOICES[args.jit_compile],
                                     mixed_precision=SWITCH_CHOICES[args.mixed_precision])
    if ours:
        make_deterministic(args.seed)  # as the train command does
    else:
        keras.utils.set_random_seed(args.seed)
    initial_weights = build_residual_unet(config).get_weights()
    train = train_ours if ours else train_seed_style
    steps_per_second, losses = train(config, initial_weights, args)
    print(json.dumps({
        "steps_per_second": steps_per_second, "losses": [float(loss) for loss in losses],
        "threads_per_op": threads_per_op or "default",
        "xla": bool(ours and resolve_jit_compile(config.jit_compile)),
        "mixed_precision": bool(ours and resolve_mixed_precision(config.mixed_precision)),
        "initial_weights": hashlib.sha256(b"".join(weights.tobytes()
                                                   for weights in initial_weights)).hexdigest(),
    }))


def run_in_child(way, argv):
    result = subprocess.run([sys.executable, __file__, *argv, "--run-way", way],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"The {way} run failed:\n{result.stdout}{result.stderr}")
    return json.loads(result.stdout.splitlines()[-1])


def loss_table(seed_losses, our_losses):
    """Mean losses over equal slices of the timed steps, side by side."""
    rows = ["   steps   seed-style    ours"]
    for indices in np.array_split(np.arange(len(seed_losses)), CURVE_POINTS):
        rows.append(f"{indices[0] + 1:4d}-{indices[-1] + 1:<4d} "
                    f"{np.mean(np.take(seed_losses, indices)):9.4f} "
                    f"{np.mean(np.take(our_losses, indices)):9.4f}")
    return "\n".join(rows)


def main():
    args = parse_args()
    if args.run_way:
        run_way(args)
        return
    print(f"backend {keras.backend.backend()}, {'GPU' if has_gpu() else 'CPU'}, profile "
          f"{args.profile}, {args.warmup} + {args.steps} steps per run")
    results = {way: [] for way in WAYS}
    for repeat in range(args.repeats):
        for way in WAYS:
            results[way].append(run_in_child(way, sys.argv[1:]))
        print(f"repeat {repeat + 1}: " + ", ".join(
            f"{way} {results[way][-1]['steps_per_second']:.1f} steps/s" for way in WAYS))
    last = {way: results[way][-1] for way in WAYS}
    if last["seed-style"]["initial_weights"] != last["ours"]["initial_weights"]:
        sys.exit("The two ways started from different weights; the comparison is void.")
    for way in WAYS:
        print(f"{way}: threads per op {last[way]['threads_per_op']}, XLA "
              f"{'on' if last[way]['xla'] else 'off'}, mixed precision "
              f"{'on' if last[way]['mixed_precision'] else 'off'}")

    fastest = {way: max(run["steps_per_second"] for run in results[way]) for way in WAYS}
    print(f"\nsteps per second (fastest of {args.repeats}): seed-style "
          f"{fastest['seed-style']:.1f}, ours {fastest['ours']:.1f}, ratio "
          f"{fastest['ours'] / fastest['seed-style']:.2f}x")
    seed_losses, our_losses = last["seed-style"]["losses"], last["ours"]["losses"]
    print(f"\nnoise MAE over the timed steps (last repeat):\n{loss_table(seed_losses, our_losses)}")
    tail = len(seed_losses) // CURVE_POINTS
    print(f"\nloss over the last {tail} steps: seed-style {np.mean(seed_losses[-tail:]):.4f}, "
          f"ours {np.mean(our_losses[-tail:]):.4f}")


if __name__ == "__main__":
    main()
