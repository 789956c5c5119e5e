"""End-to-end tests of `python -m diffusion_course` at the quick profile, on synthetic images.

Training runs in subprocesses, as TAs run it (and so that the op determinism it switches on
stays out of this process); the other commands run in this process through `main`, which is
faster. The module's training runs start together and share the two CPU cores.
"""

import contextlib
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from PIL import Image

from diffusion_course.checkpoints import read_manifest
from diffusion_course.cli import main
from diffusion_course.references import REFERENCE_RUNS, reference_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[1]
QUICK_RUN = ("--profile", "quick", "--data", "synthetic", "--kid-features", "offline",
             "--epochs", "2", "--steps-per-epoch", "16", "--save-every", "4", "--seed", "3")
TOTAL_STEPS = 2 * 16
DDPM_RUN = ("--model", "ddpm", "--profile", "quick", "--data", "synthetic", "--kid-features",
            "offline", "--epochs", "1", "--steps-per-epoch", "4", "--kid-batches", "1")
TIMEOUT_S = 600


def start_training(*arguments):
    return subprocess.Popen(
        [sys.executable, "-m", "diffusion_course", "train", *map(str, arguments)],
        cwd=REPO_ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process):
    output, _ = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 0, output
    return output


def wait_for_file(path, process):
    deadline = time.monotonic() + TIMEOUT_S
    while not path.is_file():
        assert process.poll() is None, f"training stopped before writing {path}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)


def part_hashes(checkpoint):
    return {name: entry["sha256"] for name, entry in read_manifest(checkpoint)["networks"].items()}


def log_rows(run):
    """log.csv without its wall times, which differ between runs."""
    with open(run / "log.csv", newline="") as file:
        return [{key: value for key, value in row.items() if key != "wall_time_s"}
                for row in csv.DictReader(file)]


def log_header(run):
    return (run / "log.csv").read_text().splitlines()[0]


def assert_same_logs(run, expected_run):
    """Equal logs, the mean losses to float32 precision: a resumed epoch's mean is summed
    from two parts, which rounds differently. The columns keep their order."""
    assert log_header(run) == log_header(expected_run)
    for row, expected_row in zip(log_rows(run), log_rows(expected_run), strict=True):
        assert row.keys() == expected_row.keys()
        for column in ("loss", "n_loss", "i_loss", "v_loss"):
            assert float(row.pop(column)) == pytest.approx(float(expected_row.pop(column)),
                                                           rel=1e-6)
        assert row == expected_row


def second_train_on(out):
    """(exit status, stderr) of a `train --resume` started in this process on `out`."""
    error = io.StringIO()
    with contextlib.redirect_stderr(error), contextlib.redirect_stdout(io.StringIO()):
        status = main(["train", "--out", str(out), "--resume"])
    return status, error.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two DDIM runs with one seed, a third killed with SIGKILL after its first checkpoint, and
    a short DDPM run. While the third runs, a second `train` on its folder is refused."""
    root = tmp_path_factory.mktemp("cli")
    paths = SimpleNamespace(first=root / "first", second=root / "second",
                            killed=root / "killed", ddpm=root / "ddpm")
    first, second, killed = (start_training("--model", "ddim", *QUICK_RUN, "--out", path)
                             for path in (paths.first, paths.second, paths.killed))
    ddpm = start_training(*DDPM_RUN, "--out", paths.ddpm)
    wait_for_file(paths.killed / "last" / "manifest.json", killed)
    paths.second_train = second_train_on(paths.killed)
    assert killed.poll() is None, "the run finished before a second one could be tried"
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=TIMEOUT_S)
    paths.first_output = finish(first)
    for process in (second, ddpm):
        finish(process)
    return paths


# ---- training ----------------------------------------------------------------------------------


def test_training_records_logs_grids_and_checkpoints(runs):
    assert "KID features: offline colour/texture statistics" in runs.first_output
    # redirected, the progress is one line per epoch: no terminal colour or cursor codes
    assert "\x1b[" not in runs.first_output and "\b" not in runs.first_output
    assert "TensorBoard" not in runs.first_output
    rows = log_rows(runs.first)
    assert [row["step"] for row in rows] == ["16", "32"]
    assert all(row["kid_features"].startswith("offline") and float(row["val_kid"]) > 0
               and float(row["loss"]) > 0 for row in rows)
    assert sorted(path.name for path in (runs.first / "samples").iterdir()) == [
        "epoch_001.png", "epoch_002.png"]
    best = read_manifest(runs.first / "best")
    assert set(best["networks"]) == {"network", "ema_network", "normalizer"}
    training, kid = best["extra"]["training"], best["extra"]["kid"]
    assert training["steps"] in (16, 32) and training["wall_time_s"] > 0
    assert set(training["final_losses"]) == {"loss", "n_loss", "i_loss", "v_loss"}
    assert kid["features"].startswith("offline") and kid["value"] == min(
        float(row["val_kid"]) for row in rows)
    assert best["extra"]["run"]["data"] == "synthetic" and "synthetic" in best["extra"]["data"]
    last = read_manifest(runs.first / "last")
    assert last["step"] == TOTAL_STEPS and "training_state" in last["networks"]


def test_two_runs_with_one_seed_give_identical_weights(runs):
    for checkpoint in ("last", "best"):
        assert part_hashes(runs.first / checkpoint) == part_hashes(runs.second / checkpoint)
    assert log_rows(runs.first) == log_rows(runs.second)


def test_a_run_killed_with_sigkill_resumes_to_the_same_weights(runs, capsys):
    killed_at = read_manifest(runs.killed / "last")["step"]
    assert 0 < killed_at < TOTAL_STEPS, "the run finished before it could be killed"
    assert main(["verify", str(runs.killed / "last")]) == 0  # the kill broke nothing

    output = finish(start_training("--out", runs.killed, "--resume"))
    assert f"Resuming {runs.killed} at step {killed_at}" in output
    assert part_hashes(runs.killed / "last") == part_hashes(runs.first / "last")
    assert part_hashes(runs.killed / "best") == part_hashes(runs.first / "best")
    assert_same_logs(runs.killed, runs.first)
    assert main(["verify", str(runs.killed / "last")]) == 0


def test_a_second_run_on_a_folder_in_use_is_refused_with_its_holder_named(runs):
    status, error = runs.second_train
    assert status == 1
    assert f"{runs.killed} is in use by another training run (process " in error
    assert "--out " in error and str(runs.killed) in error.split("started")[1]


def test_a_kill_before_the_last_log_update_is_repaired_by_a_resume(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs.first, run)
    lines = (run / "log.csv").read_text().splitlines(keepends=True)
    (run / "log.csv").write_text("".join(lines[:-1]))  # killed between save_last and write_csv
    output = finish(start_training("--out", run, "--resume"))
    assert f"Resuming {run} at step {TOTAL_STEPS}" in output
    assert (run / "log.csv").read_text() == "".join(lines)
    assert part_hashes(run / "last") == part_hashes(runs.first / "last")


def test_resume_refuses_other_settings_and_train_refuses_a_used_folder(runs, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--out", str(runs.first), "--resume", "--seed", "4"])
    assert exit_info.value.code == 2
    assert "seed 4 (the run has 3)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "ddim", "--out", str(runs.first)])
    assert exit_info.value.code == 2
    assert "Pass --resume" in capsys.readouterr().err


# ---- verify, sample, evaluate ------------------------------------------------------------------


def test_verify_sample_and_evaluate_a_trained_checkpoint(runs, tmp_path, capsys):
    assert main(["verify", str(runs.first / "best"), "--model", "ddim", "--profile", "quick"]) == 0
    assert "sha256" in capsys.readouterr().out

    assert main(["sample", str(runs.first), "--out", str(tmp_path / "grid.png"),
                 "--batch", "4", "--seed", "1"]) == 0
    # 2 x 2 images of 16 px, enlarged 8 times, 4 white pixels between them
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.shape == (2 * 8 * 16 + 4, 2 * 8 * 16 + 4, 3)
    assert (grid[128:132] == 255).all() and (grid[:, 128:132] == 255).all()  # the gaps
    assert (grid[0:128:8, 0:128:8] == grid[7:128:8, 7:128:8]).all()  # whole pixels, enlarged
    assert main(["sample", str(runs.first / "best"), "--out", str(tmp_path / "process.gif"),
                 "--batch", "4", "--steps", "4"]) == 0
    assert Image.open(tmp_path / "process.gif").n_frames > 2

    capsys.readouterr()
    assert main(["evaluate", str(runs.first), "--kid-features", "offline"]) == 0
    output = capsys.readouterr().out
    assert "features: offline colour/texture statistics" in output
    value = float(output.split("value: ")[1].split()[0])
    # the defaults repeat the measurement made during training
    assert value == pytest.approx(read_manifest(runs.first / "best")["extra"]["kid"]["value"],
                                  rel=1e-4)


def test_ddpm_checkpoint_samples_with_both_samplers_and_evaluates(runs, tmp_path, capsys):
    assert main(["verify", str(runs.ddpm / "best"), "--model", "ddpm"]) == 0
    assert main(["sample", str(runs.ddpm), "--out", str(tmp_path / "ddpm.png"),
                 "--sampler", "ddpm", "--batch", "2"]) == 0
    assert "ddpm sampler, 1000 steps" in capsys.readouterr().out
    assert main(["sample", str(runs.ddpm), "--out", str(tmp_path / "ddim.gif"),
                 "--sampler", "ddim", "--steps", "10", "--batch", "2"]) == 0
    assert Image.open(tmp_path / "ddim.gif").n_frames > 2
    assert main(["evaluate", str(runs.ddpm), "--kid-features", "offline",
                 "--kid-batches", "1", "--steps", "5"]) == 0
    assert "features: offline" in capsys.readouterr().out


def tamper_bytes(checkpoint):
    path = checkpoint / "network.weights.h5"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def tamper_config(checkpoint):
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    manifest["config"]["widths"] = [8, 16]
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("tamper, expected", [
    (tamper_bytes, "network.weights.h5 is corrupt: its sha256"),
    (lambda checkpoint: (checkpoint / "ema_network.weights.h5").unlink(),
     "ema_network.weights.h5 is missing"),
    (tamper_config, "manifest.json was modified after it was saved"),
])
def test_verify_fails_on_a_damaged_checkpoint(runs, tmp_path, capsys, tamper, expected):
    checkpoint = tmp_path / "best"
    shutil.copytree(runs.first / "best", checkpoint)
    tamper(checkpoint)
    assert main(["verify", str(checkpoint)]) == 1
    error = capsys.readouterr().err
    assert "verify FAILED" in error and expected in error


def test_verify_fails_on_another_model_or_profile(runs, capsys):
    assert main(["verify", str(runs.first / "best"), "--model", "ddpm"]) == 1
    assert "holds a ddim model, not ddpm" in capsys.readouterr().err
    assert main(["verify", str(runs.first / "best"), "--profile", "full"]) == 1
    assert "widths: expected [32, 64, 96, 128], checkpoint has [16, 32]" in capsys.readouterr().err


# ---- the command line itself -------------------------------------------------------------------


@pytest.mark.parametrize("command", [
    "train", "sample", "evaluate", "verify", "card", "references", "design-grid", "pack",
    "install"])
def test_every_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    output = capsys.readouterr().out
    assert "examples:" in output and f"python -m diffusion_course {command}" in output


@pytest.mark.parametrize("argv, expected", [
    ([], "required: COMMAND"),
    (["fly"], "invalid choice: 'fly'"),
    (["train", "--model", "gan", "--out", "runs/x"], "invalid choice: 'gan'"),
    (["train", "--model", "ddim", "--out", "runs/x", "--epochs", "0"], "it must be at least 1"),
    (["train", "--model", "ddim", "--out", "runs/x", "--data", "flickr"], "not a data source"),
    (["train", "--model", "ddim", "--out", "runs/x", "--data", "tfds:mnist"],
     "NAME one of oxford_flowers102, caltech_birds2011, celeb_a, cifar10"),
    (["train", "--model", "ddim"], "required: --out"),
    (["train", "--out", "runs/nothing-here"], "--model is required"),
    (["sample", "data/checkpoints/quick/ddim", "--out", "x.jpg"], "must end in .png"),
    (["sample", "data/checkpoints/quick/ddim", "--out", "x.png", "--seed", "-1"], "--seed"),
    (["evaluate"], "required: checkpoint"),
    (["verify", "a", "b"], "unrecognized arguments: b"),
    (["references"], "required: --profile"),
    (["pack", "--profile", "full"], "required: --out"),
    (["install", "a.tar", "--sums", "SHA256SUMS", "--sha256", "ab"], "not allowed with"),
    (["train", "--model", "ddim", "--out", "runs/x", "--mixed-precision", "half"],
     "invalid choice: 'half'"),
])
def test_bad_arguments_exit_with_status_2(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert expected in capsys.readouterr().err


def test_ddpm_sampler_options_that_cannot_run_exit_with_status_2(capsys):
    ddpm = str(reference_checkpoint("quick", "ddpm", REPO_ROOT / "data" / "checkpoints"))
    ddim = str(reference_checkpoint("quick", "ddim", REPO_ROOT / "data" / "checkpoints"))
    for argv, expected in [
        (["sample", ddpm, "--out", "x.png", "--sampler", "ddpm", "--steps", "10"],
         "runs every one of the model's 1000 timesteps"),
        (["sample", ddim, "--out", "x.png", "--sampler", "ddpm"], "applies to DDPM checkpoints"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert expected in capsys.readouterr().err


def test_missing_data_or_inception_weights_give_a_clear_message(tmp_path, monkeypatch, capsys):
    train = ["train", "--model", "ddim", "--profile", "quick", "--out", str(tmp_path / "run")]
    assert main([*train, "--data", f"folder:{tmp_path / 'no-such-folder'}",
                 "--kid-features", "offline"]) == 1
    assert "no-such-folder does not exist" in capsys.readouterr().err

    def offline(*args, **kwargs):
        raise OSError("name resolution failed (offline)")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(keras.utils, "get_file", offline)
    assert main([*train, "--data", "synthetic", "--kid-features", "inception"]) == 1
    error = capsys.readouterr().err
    assert "InceptionV3 ImageNet weights" in error and "--kid-features offline" in error
    assert not (tmp_path / "run").exists()  # nothing was trained


# ---- the committed reference checkpoints -------------------------------------------------------


@pytest.mark.parametrize("reference", REFERENCE_RUNS["quick"], ids=lambda run: run.model)
def test_committed_quick_references_verify_and_record_their_training(reference, capsys):
    checkpoint = reference_checkpoint("quick", reference.model, REPO_ROOT / "data" / "checkpoints")
    assert main(["verify", str(checkpoint), "--model", reference.model,
                 "--profile", "quick"]) == 0
    manifest = read_manifest(checkpoint)
    assert "training_state" not in manifest["networks"]
    extra = manifest["extra"]
    run = extra["run"]
    assert (run["model"], run["seed"], run["data"], run["kid_features"], run["epochs"]) == (
        reference.model, reference.seed, reference.data, reference.kid_features, reference.epochs)
    assert manifest["seed"] == reference.seed
    assert extra["training"]["steps"] == manifest["step"] > 0
    assert extra["training"]["wall_time_s"] > 0 and extra["training"]["final_losses"]["loss"] > 0
    assert extra["kid"]["features"].startswith("offline")
    total_bytes = sum(path.stat().st_size for path in checkpoint.iterdir())
    assert total_bytes < 3_000_000


def test_a_run_saved_before_the_mixed_precision_setting_resumes_with_its_default():
    from diffusion_course.cli.common import UsageError
    from diffusion_course.cli.train import RunSettings, check_same_run

    settings = RunSettings(model="ddim", profile="quick", data="synthetic", seed=0, epochs=1,
                           steps_per_epoch=4, kid_features="offline", kid_batches=None, ema=None,
                           jit_compile="auto", save_every=250)
    saved = {key: value for key, value in vars(settings).items() if key != "mixed_precision"}
    check_same_run(settings, saved, "runs/old")  # "auto" then, "auto" now
    with pytest.raises(UsageError, match="mixed_precision 'on' \\(the run has 'auto'\\)"):
        check_same_run(RunSettings(**{**vars(settings), "mixed_precision": "on"}), saved,
                       "runs/old")
