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
from PIL import Image

from diffusion_course.checkpoints import read_manifest
from diffusion_course.cli import build_parser, main
from diffusion_course.cli.train import settings_from
from diffusion_course.design_grid import GRID_COLUMNS, grid_table, read_grid
from diffusion_course.sampler_comparison import read_rows

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
    assert (int(rows[0]["best_step"]), int(rows[0]["trained_steps"])) == (best["step"], 3)
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


# ---- evaluate: KID against network evaluations ------------------------------------------------


def test_evaluate_writes_kid_against_network_evaluations(grid, tmp_path, capsys):
    checkpoint = grid[0] / "runs" / "velocity-image" / "best"  # a velocity-predicting model
    out = tmp_path / "chart.csv"
    assert main(["evaluate", str(checkpoint), "--kid-batches", "1", "--steps", "1,2",
                 "--sampler", "ddim", "--eta", "0,1", "--sampler", "second-order",
                 "--sampler", "multistep", "--order", "1", "--out", str(out)]) == 0
    rows = read_rows(out)
    assert [(row["sampler"], row["diffusion_steps"], row["network_evaluations"])
            for row in rows] == [
        ("ddim", 1, 1), ("ddim", 2, 2), ("ddim η=1", 1, 1), ("ddim η=1", 2, 2),
        ("second-order α=1", 1, 2), ("second-order α=1", 2, 4),
        ("multistep order 1", 1, 1), ("multistep order 1", 2, 2)]
    assert all(row["kid_features"].startswith("offline") for row in rows)
    kids = {(row["sampler"], row["diffusion_steps"]): row["kid"] for row in rows}
    # Adams-Bashforth of order 1 is DDIM, step for step
    assert kids[("multistep order 1", 2)] == pytest.approx(kids[("ddim", 2)], rel=1e-4)
    assert kids[("ddim η=1", 2)] != kids[("ddim", 2)]
    assert Image.open(out.with_suffix(".png")).size[0] > 100
    assert "| second-order α=1 |" in capsys.readouterr().out

    # one sampler at one number of steps: the single measurement, the same value
    assert main(["evaluate", str(checkpoint), "--kid-batches", "1", "--steps", "2"]) == 0
    output = capsys.readouterr().out
    assert float(output.split("value: ")[1].split()[0]) == pytest.approx(kids[("ddim", 2)],
                                                                         rel=1e-4)
    assert "ddim sampler, 2 steps (2 network evaluations)" in output


@pytest.mark.parametrize("argv, expected", [
    (["--sampler", "ddim", "--alpha", "0.5"], "--alpha applies to --sampler second-order"),
    (["--sampler", "multistep", "--order", "5"], "integers from 1 to 4"),
    (["--sampler", "second-order", "--alpha", "0"], "numbers in (0, 1]"),
    (["--steps", "2,x"], "integers from 1 to 1000"),
    (["--sampler", "ddpm"], "--sampler ddpm applies to DDPM checkpoints"),
    (["--steps", "2,4", "--out", "chart.txt"], "ending in .csv"),
])
def test_bad_evaluate_options_on_a_ddim_checkpoint_exit_with_status_2(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(REPO_ROOT / "data/checkpoints/quick/ddim"), *argv])
    assert exit_info.value.code == 2
    assert expected in capsys.readouterr().err


def test_a_ddpm_checkpoint_refuses_the_continuous_samplers(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(REPO_ROOT / "data/checkpoints/quick/ddpm"), "--sampler", "ddim",
              "--sampler", "second-order"])
    assert exit_info.value.code == 2
    assert "--sampler second-order: a DDPM checkpoint samples with ddim" in (
        capsys.readouterr().err)
