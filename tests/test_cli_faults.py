"""Faults a careful user meets on the command line: each gives a message and exit 1 or 2, and
nothing already saved is lost. These run in this process, on the committed quick references
or on checkpoints written here, and stop before any training starts."""

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from diffusion_course.checkpoints import read_manifest, save_checkpoint
from diffusion_course.cli import main
from diffusion_course.cli.common import data_fingerprint
from diffusion_course.cli.training_run import LOSS_EXPLOSION_FACTOR, divergence
from diffusion_course.config import DDIMConfig
from diffusion_course.networks import build_residual_unet
from diffusion_course.references import reference_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE = reference_checkpoint("quick", "ddim", REPO_ROOT / "data" / "checkpoints")
QUICK = ("--model", "ddim", "--profile", "quick", "--data", "synthetic", "--kid-features",
         "offline")


def exit_status(argv, capsys):
    """(exit status, stderr) of a command, whether it returns or exits through argparse."""
    try:
        status = main([str(argument) for argument in argv])
    except SystemExit as exit_info:
        status = exit_info.code
    return status, capsys.readouterr().err


def reference_copy(folder):
    shutil.copytree(REFERENCE, folder)
    return folder


def edit_manifest(checkpoint, change):
    """Edits a manifest and re-seals it, as someone who knows the seal would."""
    path = checkpoint / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    contents = {key: value for key, value in manifest.items() if key != "manifest_sha256"}
    canonical = json.dumps(contents, sort_keys=True, separators=(",", ":"))
    manifest["manifest_sha256"] = hashlib.sha256(canonical.encode()).hexdigest()
    path.write_text(json.dumps(manifest))


@contextlib.contextmanager
def small_file_system(mount_point, options):
    """A real tmpfs (root ignores file permissions, so chmod could not make one read-only)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a file system needs root")
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


@pytest.fixture
def read_only_folder(tmp_path):
    with small_file_system(tmp_path / "read-only", "ro,size=64k") as mount_point:
        yield mount_point


def write_images(folder, count, size=16):
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.new("RGB", (size, size), (index * 7 % 256, 80, 160)).save(folder / f"{index}.png")


# ---- train: the run folder -----------------------------------------------------------------


def test_an_out_that_is_a_file_fails_before_training(tmp_path, capsys):
    (tmp_path / "run").write_text("notes")
    status, error = exit_status(["train", *QUICK, "--out", tmp_path / "run"], capsys)
    assert status == 2 and "is a file, but a run needs a folder" in error
    status, error = exit_status(["train", *QUICK, "--out", tmp_path / "run" / "inner"], capsys)
    assert status == 2 and "is a file, but a run needs a folder" in error


def test_a_read_only_run_folder_is_a_message(read_only_folder, capsys):
    status, error = exit_status(["train", *QUICK, "--out", read_only_folder / "run"], capsys)
    assert status == 1 and "Cannot write to the run folder" in error and "read-only" in error


def test_a_symlinked_last_checkpoint_is_refused_before_training(tmp_path, capsys):
    elsewhere = reference_copy(tmp_path / "elsewhere")
    run = tmp_path / "run"
    run.mkdir()
    (run / "last").symlink_to(elsewhere)
    status, error = exit_status(["train", "--out", run, "--resume"], capsys)
    assert status == 1 and f"{run / 'last'} is a symbolic link" in error
    assert sorted(os.listdir(tmp_path)) == ["elsewhere", "run"]
    assert os.listdir(run) == ["last"]


def test_resuming_a_checkpoint_that_train_did_not_write_is_a_message(tmp_path, capsys):
    config = DDIMConfig.from_profile("quick")
    save_checkpoint(tmp_path / "run" / "last", {"network": build_residual_unet(config)}, config,
                    step=5, seed=0)
    status, error = exit_status(["train", "--out", tmp_path / "run", "--resume"], capsys)
    assert status == 1 and "records no run settings" in error


def test_a_nonsense_profile_in_the_environment_is_a_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIFFUSION_PROFILE", "nonsense")
    status, error = exit_status(["train", "--model", "ddim", "--out", tmp_path / "run"], capsys)
    assert status == 1 and "DIFFUSION_PROFILE='nonsense' is not a profile" in error


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_too_few_images_names_only_options_that_would_help(tmp_path, capsys, profile):
    write_images(tmp_path / "images", 10)
    status, error = exit_status(
        ["train", "--model", "ddim", "--profile", profile, "--kid-features", "offline",
         "--data", f"folder:{tmp_path / 'images'}", "--out", tmp_path / "run"], capsys)
    batch_size = DDIMConfig.from_profile(profile).batch_size
    assert status == 1 and f"at least {5 * batch_size} images" in error
    # quick is the smallest profile: suggest it only to a user who is not already on it
    assert ("--profile quick" in error) == (profile != "quick")
    for option in ("batch_size", "repetitions", "drop_remainder"):
        assert option not in error
    assert not (tmp_path / "run").exists()  # nothing trained, no trace left


def test_pack_into_a_file_says_to_name_a_folder(tmp_path, capsys):
    (tmp_path / "archive.tar").write_text("an earlier download")
    status, error = exit_status(["pack", "--profile", "quick", "--out", tmp_path / "archive.tar"],
                                capsys)
    assert status == 2 and "is a file, not a folder" in error and "Errno" not in error
    assert (tmp_path / "archive.tar").read_text() == "an earlier download"


def test_a_run_that_cannot_start_leaves_no_folders(tmp_path, capsys):
    status, error = exit_status(["train", "--out", tmp_path / "runs" / "new"], capsys)
    assert status == 2 and "--model is required" in error
    assert os.listdir(tmp_path) == []


# ---- train --resume: the same run, on the same data ------------------------------------------


@pytest.fixture
def folder_run(tmp_path):
    """A run on a folder of images, saved as `train` saves it, before any data changed."""
    images = tmp_path / "images"
    write_images(images, 100)
    fingerprint = data_fingerprint(f"folder:{images}")
    run = tmp_path / "run"
    settings = dict(model="ddim", profile="quick", data=f"folder:{images}", seed=0, epochs=2,
                    steps_per_epoch=5, kid_features="offline", kid_batches=None, ema=None,
                    jit_compile="auto", save_every=250, mixed_precision="auto")
    config = DDIMConfig.from_profile("quick")
    save_checkpoint(run / "last", {"network": build_residual_unet(config)}, config, step=5, seed=0,
                    extra={"run": settings, "data_fingerprint": fingerprint.summary()})
    (run / "data-files.json").write_text(json.dumps(fingerprint.files))
    return run, images


def test_resume_on_changed_data_is_refused_with_the_difference_named(folder_run, capsys):
    run, images = folder_run
    write_images(images / "more", 1)
    Image.new("RGB", (16, 16), "red").save(images / "3.png")
    (images / "7.png").unlink()
    status, error = exit_status(["train", "--out", run, "--resume"], capsys)
    assert status == 1 and "The data of" in error and "has changed since the run started" in error
    assert "1 added (more/0.png)" in error and "1 removed (7.png)" in error
    assert "1 changed (3.png)" in error


def test_resume_conflicts_are_named_before_the_data_is_loaded(folder_run, capsys):
    run, images = folder_run
    shutil.rmtree(images)  # loading the data would fail: the conflict must be found first
    status, error = exit_status(["train", "--out", run, "--resume", "--profile", "full"], capsys)
    assert status == 2 and "profile 'full' (the run has 'quick')" in error


# ---- divergence ------------------------------------------------------------------------------


def test_a_non_finite_or_exploding_loss_is_divergence():
    history = [{"loss": 0.2}, {"loss": 0.1}]
    assert divergence({"loss": 0.3, "i_loss": 0.5}, history) is None
    assert "mean i_loss is nan" in divergence({"loss": 0.3, "i_loss": float("nan")}, history)
    assert "mean loss is inf" in divergence({"loss": float("inf")}, [])
    exploded = divergence({"loss": 0.1 * LOSS_EXPLOSION_FACTOR * 1.01}, history)
    assert "times the lowest epoch mean so far, 0.1" in exploded


# ---- verify, sample, evaluate ----------------------------------------------------------------


def test_verify_sample_and_evaluate_refuse_a_hand_edited_manifest(tmp_path, capsys):
    checkpoint = reference_copy(tmp_path / "ddim")
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    manifest["config"]["max_signal_rate"] = 0.9
    (checkpoint / "manifest.json").write_text(json.dumps(manifest, indent=2))
    expected = "was modified after it was saved"
    status, error = exit_status(["verify", checkpoint], capsys)
    assert status == 1 and expected in error
    for command in (["sample", checkpoint, "--out", tmp_path / "x.png"],
                    ["evaluate", checkpoint, "--kid-features", "offline"]):
        status, error = exit_status(command, capsys)
        assert status == 1 and expected in error
    assert not (tmp_path / "x.png").exists()


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras, on the wrong widths
def test_verify_checks_a_resealed_configuration_against_the_weights(tmp_path, capsys):
    checkpoint = reference_copy(tmp_path / "ddim")
    edit_manifest(checkpoint, lambda manifest: manifest["config"].update(widths=[8, 16]))
    status, error = exit_status(["verify", checkpoint], capsys)
    assert status == 1 and "does not fit the weights" in error


@pytest.mark.parametrize("change, expected", [
    (lambda manifest: manifest.update(step=None), "step is None"),
    (lambda manifest: manifest.pop("config_class"), "config_class is missing"),
    (lambda manifest: manifest["config"].update(widths=None), "not a valid DDIMConfig"),
    (lambda manifest: manifest["extra"]["kid"].update(value=None), "records the KID"),
    (lambda manifest: manifest["extra"].pop("kid"), None),
])
def test_verify_reports_null_or_missing_manifest_fields(tmp_path, capsys, change, expected):
    checkpoint = reference_copy(tmp_path / "ddim")
    edit_manifest(checkpoint, change)
    status, output = exit_status(["verify", checkpoint], capsys)
    if expected is None:  # no KID at all is fine
        assert status == 0
    else:
        assert status == 1 and "verify FAILED" in output and expected in output


def test_verify_accepts_a_training_runs_folder(tmp_path, capsys):
    reference_copy(tmp_path / "run" / "best")
    assert main(["verify", str(tmp_path / "run")]) == 0
    assert f"OK: {tmp_path / 'run' / 'best'}" in capsys.readouterr().out


def test_sample_onto_a_full_disk_is_a_message(tmp_path, capsys):
    with small_file_system(tmp_path / "disk", "size=16k") as disk:
        with open(disk / "filler", "wb", buffering=0) as filler:
            with contextlib.suppress(OSError):
                while True:  # until the disk is full
                    filler.write(b"\0" * 1024)
        status, error = exit_status(["sample", REFERENCE, "--out", disk / "grid.png",
                                     "--batch", "4", "--steps", "2"], capsys)
    assert status == 1 and "cannot write" in error and "No space left on device" in error


def test_sample_onto_a_folder_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "grid.png").mkdir()
    status, error = exit_status(["sample", REFERENCE, "--out", tmp_path / "grid.png"], capsys)
    assert status == 2 and "is a folder; give the file to write" in error


def test_evaluate_defaults_to_the_features_the_checkpoint_recorded(capsys):
    assert read_manifest(REFERENCE)["extra"]["kid_features"].startswith("offline")
    assert main(["evaluate", str(REFERENCE), "--kid-batches", "1"]) == 0
    assert "features: offline" in capsys.readouterr().out


def test_a_non_utf8_path_is_printed_not_a_crash(tmp_path, capsys):
    checkpoint = reference_copy(Path(os.fsdecode(bytes(tmp_path) + b"/\xff-ddim")))
    assert main(["verify", str(checkpoint)]) == 0
    assert "-ddim" in capsys.readouterr().out


# ---- install ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make_sums", [
    lambda folder: folder / "missing-SHA256SUMS",
    lambda folder: folder,
    lambda folder: (folder / "SHA256SUMS").write_bytes(b"\xff\xfe not text") and (
        folder / "SHA256SUMS"),
    lambda folder: Path(os.fsdecode(bytes(folder) + b"/\xffSUMS")),
], ids=["missing", "folder", "not-utf8-text", "not-utf8-name"])
def test_install_with_an_unreadable_sums_file_is_a_message(tmp_path, capsys, make_sums):
    archive = tmp_path / "ddim-quick.tar"
    archive.write_bytes(b"an archive")
    status, error = exit_status(["install", archive, "--sums", make_sums(tmp_path),
                                 "--root", tmp_path / "root"], capsys)
    assert status == 1 and "Cannot read the sums file" in error
    assert not (tmp_path / "root").exists()


# ---- the output of a command ------------------------------------------------------------------


def test_a_command_prints_no_tensorflow_start_up_notices():
    env = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-m", "diffusion_course", "verify", str(REFERENCE)],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("OK: ")
