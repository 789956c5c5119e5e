import errno
import hashlib
import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

from diffusion_course.checkpoints import (
    CheckpointCorruptError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    CheckpointSaveError,
    load_checkpoint,
    read_manifest,
    save_checkpoint,
    verify_checkpoint,
)
from diffusion_course.config import DDIMConfig, DDPMConfig
from diffusion_course.networks import build_residual_unet, copy_network

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = DDIMConfig.from_profile("quick")


def perturbed(network, seed):
    """The network with every weight moved by noise, so its outputs are nonzero and unique."""
    rng = np.random.default_rng(seed)
    network.set_weights([weight + 0.05 * rng.standard_normal(weight.shape).astype(weight.dtype)
                         for weight in network.get_weights()])
    return network


def trained_pair(seed):
    network = perturbed(build_residual_unet(CONFIG), seed)
    ema_network = perturbed(copy_network(network, name="ema_residual_unet"), seed + 1000)
    return {"network": network, "ema_network": ema_network}


def fresh_pair():
    return {"network": build_residual_unet(CONFIG), "ema_network": build_residual_unet(CONFIG)}


def outputs(network):
    rng = np.random.default_rng(0)
    images = rng.standard_normal((2, CONFIG.image_size, CONFIG.image_size, 3)).astype("float32")
    noise_variances = np.array([0.1, 0.9], "float32").reshape(2, 1, 1, 1)
    return np.asarray(network([images, noise_variances], training=False))


def assert_same_weights(networks, expected_networks):
    for name, network in networks.items():
        for weight, expected in zip(network.get_weights(), expected_networks[name].get_weights(),
                                    strict=True):
            np.testing.assert_array_equal(weight, expected)
        np.testing.assert_array_equal(outputs(network), outputs(expected_networks[name]))


def leftovers(directory):
    return sorted(name for name in os.listdir(directory.parent) if name.startswith("."))


@pytest.fixture
def saved(tmp_path):
    """A checkpoint of two different networks at step 100, and those networks."""
    directory = tmp_path / "checkpoint"
    networks = trained_pair(seed=1)
    extra = {"kid": {"value": np.float32(0.25), "feature": "inception_v3_imagenet"},
             "losses": np.array([0.8, 0.5]), "wall_time_s": 12.5}
    save_checkpoint(directory, networks, CONFIG, step=100, seed=np.int64(42), extra=extra)
    return directory, networks


def test_round_trip_restores_both_networks_exactly(saved):
    directory, networks = saved
    assert not np.array_equal(outputs(networks["network"]), outputs(networks["ema_network"]))
    restored = fresh_pair()
    manifest = load_checkpoint(directory, restored, CONFIG)
    assert_same_weights(restored, networks)

    assert manifest["config_class"] == "DDIMConfig"
    assert DDIMConfig.from_dict(manifest["config"]) == CONFIG
    assert (manifest["profile"], manifest["step"], manifest["seed"]) == ("quick", 100, 42)
    assert manifest["extra"] == {"kid": {"value": 0.25, "feature": "inception_v3_imagenet"},
                                 "losses": [0.8, 0.5], "wall_time_s": 12.5}
    assert {"python", "keras", "backend", "numpy", "diffusion_course"} <= set(manifest["versions"])
    assert manifest["created"].endswith("+00:00")
    for name in ("network", "ema_network"):
        entry = manifest["networks"][name]
        assert entry["file"] == f"{name}.weights.h5"
        data = (directory / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["size_bytes"] == len(data)
    assert sorted(os.listdir(directory)) == [
        "ema_network.weights.h5", "manifest.json", "network.weights.h5"]
    assert read_manifest(directory) == manifest == verify_checkpoint(directory)
    assert json.loads((directory / "manifest.json").read_text()) == manifest
    assert leftovers(directory) == []


def test_saving_again_replaces_the_checkpoint(saved):
    directory, _ = saved
    newer = trained_pair(seed=2)
    save_checkpoint(directory, newer, CONFIG, step=200, seed=42)
    restored = fresh_pair()
    assert load_checkpoint(directory, restored)["step"] == 200
    assert_same_weights(restored, newer)
    assert leftovers(directory) == []


def test_a_subset_of_the_networks_can_be_loaded(saved):
    directory, networks = saved
    ema_network = build_residual_unet(CONFIG)
    load_checkpoint(directory, {"ema_network": ema_network})
    assert_same_weights({"ema_network": ema_network}, networks)


def test_unknown_network_names_are_listed(saved):
    directory, _ = saved
    with pytest.raises(CheckpointMismatchError, match=r"\['ema'\].*\['ema_network', 'network'\]"):
        load_checkpoint(directory, {"ema": build_residual_unet(CONFIG)})


@pytest.mark.parametrize("field, value", [
    ("widths", tuple(width + 8 for width in CONFIG.widths)),
    ("min_signal_rate", CONFIG.min_signal_rate / 2),
])
def test_config_mismatch_names_the_field(saved, field, value):
    directory, _ = saved
    changed = CONFIG.replace(**{field: value})
    with pytest.raises(CheckpointMismatchError) as error:
        load_checkpoint(directory, fresh_pair(), changed)
    expected, found = changed.to_dict()[field], CONFIG.to_dict()[field]
    assert f"{field}: expected {expected!r}, checkpoint has {found!r}" in str(error.value)
    assert isinstance(error.value, ValueError)


def test_runtime_fields_may_differ(saved):
    directory, networks = saved
    restored = fresh_pair()
    runtime_config = CONFIG.replace(batch_size=4, learning_rate=1e-4, jit_compile=False,
                                    profile="full", kid_diffusion_steps=7)
    load_checkpoint(directory, restored, runtime_config)
    assert_same_weights(restored, networks)


def test_another_config_class_is_refused(saved):
    directory, _ = saved
    with pytest.raises(CheckpointMismatchError, match="'DDIMConfig'.*DDPMConfig"):
        load_checkpoint(directory, fresh_pair(), DDPMConfig.from_profile("quick"))


def test_a_network_of_another_shape_is_refused(saved):
    directory, _ = saved
    wider = build_residual_unet(CONFIG.replace(widths=tuple(width + 8 for width in CONFIG.widths)))
    with pytest.raises(CheckpointMismatchError, match="Network 'network' does not fit"):
        with pytest.warns(UserWarning):  # Keras warns about every layer it cannot match
            load_checkpoint(directory, {"network": wider})


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[:1000])


@pytest.mark.parametrize("damage", [flip_a_byte, truncate])
def test_a_damaged_weights_file_is_detected(saved, damage):
    directory, _ = saved
    damage(directory / "ema_network.weights.h5")
    for check in (lambda: load_checkpoint(directory, fresh_pair()),
                  lambda: verify_checkpoint(directory)):
        with pytest.raises(CheckpointCorruptError) as error:
            check()
        message = str(error.value)
        assert "ema_network.weights.h5" in message
        assert read_manifest(directory)["networks"]["ema_network"]["sha256"] in message
        assert "truncated or was modified; re-copy it or regenerate it" in message


def test_missing_files_and_folders_are_reported(saved, tmp_path):
    directory, _ = saved
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere", fresh_pair())
    assert issubclass(CheckpointNotFoundError, FileNotFoundError)

    (directory / "network.weights.h5").unlink()
    with pytest.raises(CheckpointCorruptError, match="network.weights.h5 is missing"):
        verify_checkpoint(directory)

    (directory / "manifest.json").write_text('{"networks": {')
    with pytest.raises(CheckpointCorruptError, match="manifest.json is not valid JSON"):
        read_manifest(directory)
    (directory / "manifest.json").unlink()
    with pytest.raises(CheckpointCorruptError, match="has no manifest.json"):
        load_checkpoint(directory, fresh_pair())


def test_bad_arguments_fail_before_anything_is_written(tmp_path):
    directory = tmp_path / "checkpoint"
    network = build_residual_unet(CONFIG)
    with pytest.raises(TypeError, match="of type object, which JSON cannot store"):
        save_checkpoint(directory, {"network": network}, CONFIG, 1, 0, extra={"bad": object()})
    with pytest.raises(TypeError, match="non-empty dict"):
        save_checkpoint(directory, network, CONFIG, 1, 0)
    with pytest.raises(ValueError, match="cannot be a file name"):
        save_checkpoint(directory, {"../network": network}, CONFIG, 1, 0)
    with pytest.raises(TypeError, match="step=1.5 must be an integer"):
        save_checkpoint(directory, {"network": network}, CONFIG, 1.5, 0)
    assert not directory.exists() and leftovers(directory) == []


def test_a_folder_that_is_not_a_checkpoint_is_never_replaced(tmp_path):
    (tmp_path / "notes.txt").write_text("a run's other files")
    with pytest.raises(FileExistsError, match="is not a checkpoint"):
        save_checkpoint(tmp_path, {"network": build_residual_unet(CONFIG)}, CONFIG, 1, 0)
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_a_failing_save_keeps_the_previous_checkpoint(saved):
    directory, networks = saved

    class BrokenModel:
        def save_weights(self, path):
            raise OSError("disk full")

        def load_weights(self, path):
            raise AssertionError("never loaded")

    broken = {"network": networks["network"], "ema_network": BrokenModel()}
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(directory, broken, CONFIG, step=200, seed=42)
    assert verify_checkpoint(directory)["step"] == 100
    assert leftovers(directory) == []


# A save in a child process that kills itself (SIGKILL: no cleanup, no finally) at one point.
# It saves a tiny stand-in network: the test is about files, and the U-Net takes seconds to
# build under JAX.
KILLED_SAVE = """
import os, shutil, signal, sys
from pathlib import Path

import keras
import numpy as np
from diffusion_course import atomic_folder, checkpoints

directory, kill_point = sys.argv[1:]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if kill_point == "after_the_first_weights_file":
    real_save_weights = keras.Model.save_weights
    def save_weights_then_die(self, *args, **kwargs):
        real_save_weights(self, *args, **kwargs)
        die()
    keras.Model.save_weights = save_weights_then_die
elif kill_point == "between_the_renames":
    real_rename = atomic_folder._rename
    def rename_unless_moving_in(source, target):
        if source.name.startswith(".tmp-"):
            die()
        real_rename(source, target)
    atomic_folder._rename = rename_unless_moving_in
elif kill_point == "before_deleting_the_old_copy":
    real_rmtree = shutil.rmtree
    def rmtree_unless_old(path, *args, **kwargs):
        if Path(path).name.startswith(".old-"):
            die()
        real_rmtree(path, *args, **kwargs)
    shutil.rmtree = rmtree_unless_old

network = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
network.set_weights([np.full_like(weight, 0.5) for weight in network.get_weights()])
networks = {"network": network, "ema_network": network}
checkpoints.save_checkpoint(directory, networks, None, step=200, seed=7)
print("the save finished")
"""


def run_killed_save(directory, kill_point):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(directory), kill_point],
                            env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    assert "the save finished" not in result.stdout


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
@pytest.mark.parametrize("kill_point", ["after_the_first_weights_file", "between_the_renames"])
def test_a_killed_save_leaves_the_previous_checkpoint_loadable(saved, kill_point):
    directory, networks = saved
    run_killed_save(directory, kill_point)
    if kill_point == "after_the_first_weights_file":
        (temporary,) = directory.parent.glob(".tmp-checkpoint-*")
        assert os.listdir(temporary) == ["network.weights.h5"]
        restored = fresh_pair()
        assert load_checkpoint(directory, restored, CONFIG)["step"] == 100
    else:
        assert not directory.exists()  # killed while the old copy was renamed aside
        restored = fresh_pair()
        with pytest.warns(UserWarning, match="a save was killed"):
            assert load_checkpoint(directory, restored, CONFIG)["step"] == 100
    assert_same_weights(restored, networks)

    # the next save puts the old copy back first, then replaces it and deletes the leftovers
    newer = trained_pair(seed=3)
    save_checkpoint(directory, newer, CONFIG, step=300, seed=42)
    restored = fresh_pair()
    assert load_checkpoint(directory, restored)["step"] == 300
    assert_same_weights(restored, newer)
    assert leftovers(directory) == []


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_a_save_killed_after_the_swap_leaves_the_new_checkpoint(saved):
    directory, networks = saved
    run_killed_save(directory, "before_deleting_the_old_copy")
    assert verify_checkpoint(directory)["step"] == 200
    restored = {name: keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
                for name in ("network", "ema_network")}
    load_checkpoint(directory, restored)
    for weight in restored["network"].get_weights() + restored["ema_network"].get_weights():
        np.testing.assert_array_equal(weight, 0.5)  # what the killed save wrote
    (old_copy,) = directory.parent.glob(".old-checkpoint-*")
    assert read_manifest(old_copy)["step"] == 100

    # an unrelated checkpoint's temporary folder next to it is left alone
    unrelated = directory.parent / ".tmp-checkpoint-2-0123abcd"
    unrelated.mkdir()
    save_checkpoint(directory, networks, CONFIG, step=300, seed=42)
    assert leftovers(directory) == [unrelated.name]


# ---- the manifest's seal, and manifests that are not whole ------------------------------------


def rewrite_manifest(directory, change, reseal=False):
    """Edits the manifest as a person would; with `reseal`, as one who knows the seal too."""
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    if reseal:
        contents = {key: value for key, value in manifest.items() if key != "manifest_sha256"}
        canonical = json.dumps(contents, sort_keys=True, separators=(",", ":"))
        manifest["manifest_sha256"] = hashlib.sha256(canonical.encode()).hexdigest()
    path.write_text(json.dumps(manifest, indent=2))


@pytest.mark.parametrize("field, value", [("image_size", 32), ("max_signal_rate", 0.9)])
def test_a_hand_edited_configuration_is_refused(saved, field, value):
    directory, _ = saved
    rewrite_manifest(directory, lambda manifest: manifest["config"].update({field: value}))
    for check in (lambda: read_manifest(directory), lambda: verify_checkpoint(directory),
                  lambda: load_checkpoint(directory, fresh_pair())):
        with pytest.raises(CheckpointCorruptError, match="was modified after it was saved"):
            check()


def test_a_format_1_manifest_is_refused_with_the_readmes_command(saved):
    directory, _ = saved
    # what the library wrote before manifests were sealed: format 1, no manifest_sha256
    rewrite_manifest(directory, lambda manifest: (manifest.pop("manifest_sha256"),
                                                  manifest.update(format_version=1)))
    regenerate = "python -m diffusion_course references --profile quick"
    assert regenerate in open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8").read()
    for check in (lambda: read_manifest(directory), lambda: verify_checkpoint(directory),
                  lambda: load_checkpoint(directory, fresh_pair())):
        with pytest.raises(CheckpointMismatchError, match="format 1") as error:
            check()
        assert regenerate in str(error.value)


def test_a_manifest_of_a_later_format_asks_for_a_newer_library(saved):
    directory, _ = saved
    rewrite_manifest(directory, lambda manifest: manifest.update(format_version=3), reseal=True)
    with pytest.raises(CheckpointMismatchError, match="reads format 2 only. Update"):
        read_manifest(directory)


@pytest.mark.parametrize("change", [
    lambda manifest: manifest.update(step=None),
    lambda manifest: manifest.pop("extra"),
    lambda manifest: manifest.update(config_class=7),
    lambda manifest: manifest["networks"]["network"].pop("size_bytes"),
])
def test_a_manifest_with_null_or_missing_fields_is_reported(saved, change):
    directory, _ = saved
    rewrite_manifest(directory, change, reseal=True)
    with pytest.raises(CheckpointCorruptError, match="is not a complete diffusion_course manifest"):
        read_manifest(directory)


def test_a_weights_file_that_is_not_hdf5_is_reported(saved):
    directory, _ = saved
    garbage = b"not an HDF5 file" * 100
    (directory / "network.weights.h5").write_bytes(garbage)

    def record_garbage(manifest):
        manifest["networks"]["network"]["sha256"] = hashlib.sha256(garbage).hexdigest()

    rewrite_manifest(directory, record_garbage, reseal=True)
    with pytest.raises(CheckpointCorruptError, match="cannot be read as a weights file"):
        load_checkpoint(directory, fresh_pair())


def test_a_symlinked_checkpoint_is_never_replaced(saved, tmp_path):
    directory, networks = saved
    link = tmp_path / "linked"
    link.symlink_to(directory)
    with pytest.raises(FileExistsError, match="is a symbolic link"):
        save_checkpoint(link, networks, CONFIG, step=200, seed=42)
    assert link.is_symlink() and verify_checkpoint(directory)["step"] == 100
    assert leftovers(link) == []


# ---- a full disk ------------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1 MiB file system (tmpfs), which a test can fill."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def fill(disk, leave_bytes):
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    (disk / "filler").write_bytes(b"\0" * max(0, free - leave_bytes))


def test_a_full_disk_names_the_intact_previous_checkpoint(tiny_disk):
    directory = tiny_disk / "checkpoint"
    networks = trained_pair(seed=1)
    save_checkpoint(directory, networks, CONFIG, step=100, seed=42)
    fill(tiny_disk, leave_bytes=64 << 10)
    with pytest.raises(CheckpointSaveError) as error:
        save_checkpoint(directory, trained_pair(seed=2), CONFIG, step=200, seed=42)
    assert str(error.value).startswith(f"no space left on device while saving {directory}; "
                                       f"the previous checkpoint {directory} is intact")
    assert error.value.errno == errno.ENOSPC
    restored = fresh_pair()
    assert load_checkpoint(directory, restored, CONFIG)["step"] == 100
    assert_same_weights(restored, networks)
    assert leftovers(directory) == []


# HDF5 crashed the process (exit 139) when its file could not be written; the save must fail
# as a Python error instead, in a process that then exits normally.
FULL_DISK_SAVE = """
import sys
from diffusion_course.checkpoints import CheckpointSaveError, save_checkpoint
from diffusion_course.config import DDIMConfig
from diffusion_course.networks import build_residual_unet

config = DDIMConfig.from_profile("quick")
try:
    save_checkpoint(sys.argv[1], {"network": build_residual_unet(config)}, config, 1, 0)
except CheckpointSaveError as error:
    print(error)
    sys.exit(1)
"""


def test_a_full_disk_does_not_crash_the_process(tiny_disk):
    fill(tiny_disk, leave_bytes=32 << 10)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", FULL_DISK_SAVE, str(tiny_disk / "checkpoint")],
                            env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "no space left on device while saving" in result.stdout
    assert "no checkpoint was there before" in result.stdout
    assert sorted(os.listdir(tiny_disk)) == ["filler"]
