"""What a training run does around Keras's `fit`: progress, checkpoints, KID, grids and logs.

`fit` runs the steps (its loop is faster than one `train_on_batch` per step); `TrainingRun`, a
callback, counts them, saves `last/` every `save_every` steps and at each epoch's end, and after
each epoch measures KID, draws the sample grid, keeps `best/` and rewrites the log. A loss that
is not finite, or that explodes, stops the run before anything more is saved.

Resuming inside an epoch takes two `fit` calls, because `fit` starts only at epoch boundaries:
one for the rest of that epoch, one for the epochs after it. Keras resets its loss means at
every epoch start, so the sums of the steps before a resume come from the checkpoint.
"""

import csv
import math
import os
import sys
import time

import keras

from diffusion_course.cli.common import CommandError

PROGRESS_BAR_SECONDS = 0.2  # reading the losses waits for the step: not after every one
# an epoch's mean loss this many times the lowest epoch mean before it: the run has diverged
LOSS_EXPLOSION_FACTOR = 100
# log.csv's columns around the losses, whose names depend on the model
FIRST_COLUMNS, LAST_COLUMNS = ("epoch", "step"), ("val_kid", "kid_features", "wall_time_s")


class TrainingDivergedError(CommandError):
    """The losses are not finite or have exploded: going on would only save a broken model."""


def divergence(losses, history):
    """Why this epoch's mean `losses` show a diverged run, or None; `history` is the epochs
    before it."""
    for name, value in losses.items():
        if not math.isfinite(value):
            return f"this epoch's mean {name} is {value}"
    lowest = min((row["loss"] for row in history), default=None)
    if lowest is not None and losses.get("loss", 0.0) > LOSS_EXPLOSION_FACTOR * lowest:
        return (f"this epoch's mean loss, {losses['loss']:.4g}, is over {LOSS_EXPLOSION_FACTOR} "
                f"times the lowest epoch mean so far, {lowest:.4g}")
    return None


class Progress:
    """Where a run stands: the step, this epoch's loss sums, the epochs done, the wall time.

    All of it goes into `last/`'s manifest, so a resumed run logs what an unbroken one does
    (a resumed epoch's mean losses to float32 precision: they are summed from two parts).
    """

    def __init__(self, step=0, loss_sums=None, epoch_steps=0, history=(), wall_time_s=0.0):
        self.step = step
        self.loss_sums = dict(loss_sums or {})
        self.epoch_steps = epoch_steps
        self.history = list(history)
        self.wall_time_s = wall_time_s

    @classmethod
    def from_manifest(cls, manifest):
        extra = manifest["extra"]
        return cls(manifest["step"], extra["epoch_progress"]["loss_sums"],
                   extra["epoch_progress"]["steps"], extra["history"],
                   extra["training"]["wall_time_s"])

    def epoch_losses(self):
        return {name: total / self.epoch_steps for name, total in self.loss_sums.items()}

    def end_epoch(self, row):
        self.history.append(row)
        self.loss_sums, self.epoch_steps = {}, 0

    def best_kid(self):
        return min((row["val_kid"] for row in self.history), default=None)

    @staticmethod
    def summary(row):
        """The manifest's record of an epoch: steps, wall time, losses and KID with features."""
        losses = {name: value for name, value in row.items()
                  if name not in ("epoch", "step", "val_kid", "kid_features", "wall_time_s")}
        return {"training": {"steps": row["step"], "epochs": row["epoch"],
                             "wall_time_s": row["wall_time_s"], "final_losses": losses},
                "kid": {"value": row["val_kid"], "features": row["kid_features"],
                        "epoch": row["epoch"]}}

    def record(self, wall_time_s):
        """The manifest's record for `last/`: everything needed to resume, and the latest KID."""
        latest = self.summary(self.history[-1]) if self.history else None
        return {"training": {"steps": self.step, "epochs": len(self.history),
                             "wall_time_s": wall_time_s,
                             "final_losses": latest and latest["training"]["final_losses"]},
                "kid": latest and latest["kid"],
                "history": self.history,
                "epoch_progress": {"steps": self.epoch_steps, "loss_sums": self.loss_sums}}


class TrainingRun(keras.callbacks.Callback):
    """Everything a run records while `fit` trains; `fit_all` runs it to the last epoch."""

    def __init__(self, out, settings, config, progress, training_parts, kid_callback,
                 grid_callback, run_record):
        super().__init__()
        self.out = out
        self.settings = settings
        self.config = config
        self.progress = progress
        self.training_parts = training_parts
        self.kid_callback = kid_callback
        self.grid_callback = grid_callback
        self.run_record = run_record
        self.started = time.perf_counter()
        self.wall_time_before = progress.wall_time_s

    def fit_all(self, model, training_stream):
        """Trains to the last epoch; `training_stream(step)` gives the batches from `step` on."""
        steps_per_epoch, epochs = self.settings.steps_per_epoch, self.settings.epochs
        epoch, position = divmod(self.progress.step, steps_per_epoch)
        if position and epoch < epochs:  # resumed inside an epoch: finish it first
            model.fit(training_stream(self.progress.step), initial_epoch=epoch, epochs=epoch + 1,
                      steps_per_epoch=steps_per_epoch - position, callbacks=[self], verbose=0)
            epoch += 1
        if epoch < epochs:
            model.fit(training_stream(self.progress.step), initial_epoch=epoch, epochs=epochs,
                      steps_per_epoch=steps_per_epoch, callbacks=[self], verbose=0)

    def wall_time(self):
        return round(self.wall_time_before + time.perf_counter() - self.started, 1)

    def on_epoch_begin(self, epoch, logs=None):
        print(f"Epoch {epoch + 1}/{self.settings.epochs}")
        # the loss sums of this epoch's steps before `fit` started (after a resume)
        self.sums_before = dict(self.progress.loss_sums)
        self.steps_before = self.progress.epoch_steps
        # every value shown is already this epoch's mean, so the bar must not average them;
        # redirected to a file, one line per epoch and no terminal colour codes
        self.progress_bar = keras.utils.Progbar(self.settings.steps_per_epoch,
                                                verbose=1 if sys.stdout.isatty() else 2,
                                                stateless_metrics=())
        self.shown_at = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        self.progress.step += 1
        self.progress.epoch_steps += 1
        epoch_done = self.progress.epoch_steps == self.settings.steps_per_epoch
        if time.monotonic() - self.shown_at > PROGRESS_BAR_SECONDS and not epoch_done:
            self.show(logs)
        if self.progress.step % self.settings.save_every == 0 and not epoch_done:
            self.count_losses(logs)
            self.save_last()

    def on_epoch_end(self, epoch, logs=None):
        self.show(logs)
        progress = self.progress
        row = {"epoch": epoch + 1, "step": progress.step, **progress.epoch_losses()}
        self.kid_callback.on_epoch_end(epoch, row)  # adds val_kid and prints it with features
        if not math.isfinite(row["val_kid"]):
            self.stop(f"the KID of the generated images is {row['val_kid']}")
        self.grid_callback.on_epoch_end(epoch)
        row.update(kid_features=self.kid_callback.kid.feature_name, wall_time_s=self.wall_time())
        # best before last: a run killed in between redoes this epoch and finds the same KID
        if progress.best_kid() is None or row["val_kid"] < progress.best_kid():
            self.save(self.out / "best", self.model.checkpoint_parts(),
                      {**self.run_record, **Progress.summary(row)})
        progress.end_epoch(row)
        self.save_last()
        write_csv(self.out / "log.csv", progress.history)

    def count_losses(self, logs):
        """This epoch's loss sums: those from before `fit` plus Keras's means times steps.

        Every save and every line of progress comes after this count, so a diverged run is
        stopped here, before a broken model can be saved."""
        steps = self.progress.epoch_steps - self.steps_before
        self.progress.loss_sums = {
            name: self.sums_before.get(name, 0.0) + float(value) * steps
            for name, value in logs.items()}
        reason = divergence(self.progress.epoch_losses(), self.progress.history)
        if reason is not None:
            self.stop(reason)

    def stop(self, reason):
        raise TrainingDivergedError(
            f"Training stopped at step {self.progress.step}: {reason}, so the run has "
            f"diverged. Nothing after the last save was kept: {self.out / 'last'} and "
            f"{self.out / 'best'} hold what came before. A resume would diverge again; "
            "start a new run with another --seed, or lower the profile's learning_rate.")

    def show(self, logs):
        self.count_losses(logs)
        self.progress_bar.update(self.progress.epoch_steps,
                                 values=list(self.progress.epoch_losses().items()))
        self.shown_at = time.monotonic()

    def save_last(self):
        self.save(self.out / "last", self.training_parts,
                  {**self.run_record, **self.progress.record(self.wall_time())})

    def save(self, directory, parts, extra):
        from diffusion_course.checkpoints import save_checkpoint

        save_checkpoint(directory, parts, self.config, self.progress.step, self.settings.seed,
                        extra)


def write_csv(path, rows):
    """Rewrites the whole log from the history, so it always matches the last checkpoint.

    The columns have one order whether the rows come from this process or from a manifest
    (whose keys are sorted): epoch, step, "loss", the other losses by name, then the KID."""
    losses = {column for row in rows for column in row} - {*FIRST_COLUMNS, *LAST_COLUMNS}
    columns = [*FIRST_COLUMNS, *sorted(losses, key=lambda name: (name != "loss", name)),
               *LAST_COLUMNS]
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)
