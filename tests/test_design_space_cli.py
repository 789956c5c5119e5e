"""The DDIM design space on the command line: train's schedule/prediction/loss options, the
prediction x loss-weighting grid, and evaluate's KID against network evaluations.

One short design-grid run (in a subprocess, like test_cli.py's training runs) trains a model
with a non-default prediction and weighting; the other tests read its records.
"""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffusion_course.checkpoints import read_manifest
from diffusion_course.cli import build_parser, main
from diffusion_course.cli.train import settings_from
from diffusion_course.design_grid import GRID_COLUMNS, grid_table, read_grid

REPO_ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 600


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A 1 x 1 grid (velocity prediction, image-error weighting) of one epoch of 3 steps."""
    root = tmp_path_factory.mktemp("design_grid")
    completed = subprocess.run(
        [sys.executable, "-m", "diffusion_course", "design-grid", "--profile", "quick",
         "--predictions", "velocity", "--loss-weightings", "image", "--epochs", "1",
         "--steps-per-epoch", "3", "--work-dir", str(root / "runs"),
         "--out", str(root / "grid.csv")],
        cwd=REPO_ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True,
        text=True, timeout=TIMEOUT_S)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return root, completed.stdout


def test_design_grid_writes_a_kid_table_of_its_runs(grid):
    root, output = grid
    rows = read_grid(root / "grid.csv")
    assert [(row["prediction"], row["loss_weighting"]) for row in rows] == [("velocity", "image")]
    best = read_manifest(root / "runs" / "velocity-image" / "best")
    assert rows[0]["kid"] == best["extra"]["kid"]["value"]
    assert rows[0]["kid_features"] == best["extra"]["kid"]["features"]
    with open(root / "grid.csv", newline="") as file:
        assert tuple(next(csv.reader(file))) == GRID_COLUMNS
    assert "| velocity |" in output and "KID features: offline" in output


def test_the_manifest_records_the_prediction_and_loss_weighting(grid):
    manifest = read_manifest(grid[0] / "runs" / "velocity-image" / "best")
    run, config = manifest["extra"]["run"], manifest["config"]
    assert (run["prediction"], run["loss_weighting"]) == ("velocity", "image")
    assert (config["prediction"], config["loss_weighting"]) == ("velocity", "image")
    assert run["schedule"] is None and config["schedule"] == "assignment-cosine"  # the default


def test_train_options_become_run_settings(tmp_path):
    args = build_parser().parse_args([
        "train", "--model", "ddim", "--out", str(tmp_path / "run"), "--schedule",
        "log-snr-linear", "--start-log-snr", "5", "--end-log-snr", "-5", "--prediction",
        "image", "--loss-weighting", "velocity", "--loss", "mse"])
    settings, resuming = settings_from(args)
    assert not resuming
    assert (settings.schedule, settings.start_log_snr, settings.end_log_snr, settings.prediction,
            settings.loss_weighting, settings.loss) == (
        "log-snr-linear", 5.0, -5.0, "image", "velocity", "mse")


@pytest.mark.parametrize("argv, expected", [
    (["--model", "ddpm", "--prediction", "velocity"], "--prediction: the schedule, prediction"),
    (["--model", "ddim", "--schedule", "sigmoid"], "invalid choice: 'sigmoid'"),
    (["--model", "ddim", "--loss", "huber"], "invalid choice: 'huber'"),
])
def test_bad_design_space_options_exit_with_status_2(argv, expected, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *argv, "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_grid_table_puts_predictions_in_rows_and_weightings_in_columns():
    rows = [{"prediction": p, "loss_weighting": w, "kid": kid}
            for p, w, kid in [("noise", "noise", 0.5), ("noise", "velocity", 0.25),
                              ("image", "noise", 0.125)]]
    assert grid_table(rows).splitlines() == [
        "| prediction \\ loss weighting | noise | velocity |",
        "| :-- | --: | --: |",
        "| noise | 0.5000 | 0.2500 |",
        "| image | 0.1250 |  |",
    ]
