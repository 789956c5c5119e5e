"""The prediction x loss-weighting grid: one DDIM training run per pair, and the KID of each.

The network may predict the noise, the image or the velocity, and training may minimise the
error of any of the three (parametrizations.py, losses.py): nine models, all else equal. The
grid is trained once by a TA command and its table committed, because nine trainings are too
slow for a notebook that CI runs:

    python -m diffusion_course design-grid --profile quick     # CPU, a few minutes

    rows = read_grid(grid_file("quick"))  # [{"prediction": ..., "loss_weighting": ..., "kid": ...}]
"""

import csv
import dataclasses
import tempfile
from pathlib import Path

from diffusion_course.config import LOSS_WEIGHTINGS, PREDICTIONS
from diffusion_course.references import DEFAULT_ROOT
from diffusion_course.sampler_comparison import write_rows

GRID_FILE_NAME = "prediction_x_loss_weighting.csv"
# kid is the run's best (lowest) KID, measured after epoch `best_step` / steps per epoch
GRID_COLUMNS = ("prediction", "loss_weighting", "kid", "kid_features", "best_step",
                "trained_steps", "wall_time_s", "data", "seed")


@dataclasses.dataclass(frozen=True)
class GridRuns:
    """What every run of a profile's grid shares: only the prediction and weighting vary."""

    data: str
    kid_features: str
    epochs: int
    seed: int = 0
    ema: float | None = None  # None: the profile's


# the quick grid: the quick DDIM reference's settings (references.py), for 6 epochs of 64 steps
GRID_RUNS = {
    "quick": GridRuns(data="synthetic", kid_features="offline", epochs=6, ema=0.99),
    "full": GridRuns(data="tfds", kid_features="inception", epochs=50),
}


def grid_file(profile, root=DEFAULT_ROOT):
    """Where a profile's grid table is kept, beside its reference checkpoints."""
    return Path(root) / profile / GRID_FILE_NAME


def train_grid(profile, out=None, predictions=PREDICTIONS, loss_weightings=LOSS_WEIGHTINGS,
               epochs=None, steps_per_epoch=None, work_dir=None):
    """Trains one DDIM run per (prediction, loss weighting) and writes their best KIDs to `out`
    (default: `grid_file(profile)`). The runs go to `work_dir`, where an interrupted grid
    resumes; without it, to a temporary folder. Returns the rows."""
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="design-grid-") as temporary:
            return train_grid(profile, out, predictions, loss_weightings, epochs,
                              steps_per_epoch, temporary)
    from diffusion_course.checkpoints import read_manifest
    from diffusion_course.cli.train import DEFAULT_SAVE_EVERY, RunSettings, train

    runs = GRID_RUNS[profile]
    rows = []
    for prediction in predictions:
        for loss_weighting in loss_weightings:
            settings = RunSettings(
                model="ddim", profile=profile, data=runs.data, seed=runs.seed,
                epochs=epochs or runs.epochs, steps_per_epoch=steps_per_epoch,
                kid_features=runs.kid_features, kid_batches=None, ema=runs.ema,
                jit_compile="auto", save_every=DEFAULT_SAVE_EVERY, prediction=prediction,
                loss_weighting=loss_weighting)
            run = Path(work_dir) / f"{prediction}-{loss_weighting}"
            best, last = read_manifest(train(settings, run, resume=True)), read_manifest(
                run / "last")
            rows.append({"prediction": prediction, "loss_weighting": loss_weighting,
                         "kid": best["extra"]["kid"]["value"],
                         "kid_features": best["extra"]["kid"]["features"],
                         "best_step": best["step"], "trained_steps": last["step"],
                         "wall_time_s": last["extra"]["training"]["wall_time_s"],
                         "data": runs.data, "seed": runs.seed})
            write_grid(rows, out or grid_file(profile))  # after each run: a partial grid shows
    return rows


def write_grid(rows, path):
    return write_rows(rows, path, GRID_COLUMNS)


def read_grid(path):
    """The rows of a grid table, with KIDs as floats."""
    with open(path, newline="", encoding="utf-8") as file:
        return [{**row, "kid": float(row["kid"])} for row in csv.DictReader(file)]


def grid_table(rows):
    """A markdown table of KIDs: one row per prediction, one column per loss weighting."""
    kids = {(row["prediction"], row["loss_weighting"]): row["kid"] for row in rows}
    weightings = [w for w in LOSS_WEIGHTINGS if any(key[1] == w for key in kids)]
    predictions = [p for p in PREDICTIONS if any(key[0] == p for key in kids)]
    lines = ["| prediction \\ loss weighting | " + " | ".join(weightings) + " |",
             "| :-- |" + " --: |" * len(weightings)]
    for prediction in predictions:
        cells = [f"{kids[(prediction, w)]:.4f}" if (prediction, w) in kids else ""
                 for w in weightings]
        lines.append(f"| {prediction} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
