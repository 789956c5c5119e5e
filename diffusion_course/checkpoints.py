"""Checkpoints: a set of named networks in the Keras 3 weights format, with a JSON manifest.

A checkpoint is one folder:

    runs/flowers/checkpoint/
        manifest.json              config, step, seed, library versions, sha256 of every file,
                                   and the sha256 of the manifest itself
        network.weights.h5
        ema_network.weights.h5

    save_checkpoint("runs/flowers/checkpoint", model.checkpoint_parts(), config, step, seed)
    load_checkpoint("runs/flowers/checkpoint", model.checkpoint_parts(), config)
    copy_checkpoint("downloads/ddim", "data/checkpoints/full/ddim")   # same atomic swap

Saving never destroys the previous checkpoint, even when the process is killed at any moment:
the files are written into a new sibling folder, which is then swapped in by two renames (see
`diffusion_course.atomic_folder`). Loading a checkpoint that a kill left renamed aside falls back
to that copy (with a warning), and the next save puts it back. A save refuses to replace a
non-empty folder that is not a checkpoint, or a symbolic link.

A save checks the free disk space before it writes: HDF5 crashes the whole process (a segfault)
when a write fails mid-file, so a full disk must be found before any weights are written. Any
failure to write raises `CheckpointSaveError`, which says that the previous checkpoint is intact.

The manifest seals itself: `manifest_sha256` is the sha256 of everything else in it, checked on
every read, so a hand-edited noise schedule or image size is refused rather than silently used.
A manifest of format 1, written before the seal existed, is refused with what to do.

A configuration check on loading compares every field except `RUNTIME_FIELDS`: the fields that
change neither the weights' shapes nor what the network's inputs and outputs mean (the noise
schedule is part of that meaning), so a checkpoint can be sampled or trained on with another
batch size, learning rate or speed setting.
"""

import datetime
import errno
import hashlib
import importlib.metadata
import json
import math
import operator
import os
import platform
import re
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path

import keras
import numpy as np

from diffusion_course.atomic_folder import fsync, newest_aside, replace_atomically

MANIFEST_NAME = "manifest.json"
WEIGHTS_SUFFIX = ".weights.h5"
FORMAT_VERSION = 2  # 2: the manifest holds manifest_sha256
SEAL_FIELD = "manifest_sha256"

# speed, naming, optimisation and evaluation settings: loading may change them freely
RUNTIME_FIELDS = frozenset({
    "profile", "jit_compile", "mixed_precision",
    "batch_size", "num_epochs", "dataset_repetitions", "learning_rate", "weight_decay", "ema",
    "kid_image_size", "kid_diffusion_steps", "plot_diffusion_steps",
})

_NETWORK_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_HASH_CHUNK_BYTES = 1 << 20
# what an HDF5 file needs beyond its arrays, per variable (measured: 2-4 KiB) and per file
_HDF5_BYTES_PER_VARIABLE = 8 << 10
_HDF5_BYTES_PER_FILE = 16 << 10


class CheckpointError(Exception):
    """Something is wrong with a checkpoint folder; the subclasses say what."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """There is no checkpoint at the given path."""


class CheckpointCorruptError(CheckpointError, ValueError):
    """A file of the checkpoint is missing, unreadable, or differs from its recorded sha256."""


class CheckpointMismatchError(CheckpointError, ValueError):
    """The checkpoint does not fit the configuration or the networks it is loaded into."""


class CheckpointSaveError(CheckpointError, OSError):
    """A save could not write its files (disk full, read-only, no permission); the previous
    checkpoint, if any, is intact."""


# ---- saving --------------------------------------------------------------------------------


def save_checkpoint(directory, networks, config, step, seed, extra=None):
    """Saves `networks` (a dict name -> keras.Model) and a manifest to `directory`, atomically.

    `config` is the model's configuration object (or None), `step` the number of training steps
    so far, `seed` the run's random seed (or None), and `extra` a JSON-ready dict of anything
    else worth keeping (losses, KID with its feature extractor's name, wall time). Any object
    with `save_weights`/`load_weights` may be stored, e.g. a compiled model with its optimizer.
    Returns the manifest.
    """
    _check_networks(networks)
    manifest = {
        "format_version": FORMAT_VERSION,
        "config_class": None if config is None else type(config).__name__,
        "config": None if config is None else _json_ready(config.to_dict(), "config"),
        "profile": getattr(config, "profile", None),
        "step": _integer(step, "step"),
        "seed": None if seed is None else _integer(seed, "seed"),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": library_versions(),
        "networks": {},
        "extra": _json_ready({} if extra is None else extra, "extra"),
    }

    def write_parts(temporary):
        _check_free_space(temporary, networks)
        for name, network in networks.items():
            path = temporary / f"{name}{WEIGHTS_SUFFIX}"
            network.save_weights(str(path))
            fsync(path)
            manifest["networks"][name] = {
                "file": path.name, "sha256": file_sha256(path),
                "size_bytes": path.stat().st_size,
            }
        manifest[SEAL_FIELD] = manifest_digest(manifest)
        _write_json(temporary / MANIFEST_NAME, manifest)

    replace_atomically(Path(os.path.abspath(directory)), write_parts, MANIFEST_NAME, _save_error)
    return manifest


def copy_checkpoint(source, directory):
    """Copies the checkpoint at `source` to `directory` with the same atomic swap as a save.

    Only the manifest and the files it lists are copied, after every sha256 is checked, and the
    model card (README.md) when there is one as a regular file; a checkpoint already at
    `directory` is replaced only once the copy is complete. Returns the manifest.
    """
    manifest = verify_checkpoint(source)
    source = _existing_checkpoint(source)
    card = source / "README.md"  # documentation, written by `card`: not part of the hashes
    names = [MANIFEST_NAME, *(entry["file"] for entry in manifest["networks"].values()),
             *(["README.md"] if card.is_file() and not card.is_symlink() else [])]

    def copy_files(temporary):
        for name in names:
            shutil.copyfile(source / name, temporary / name)
            fsync(temporary / name)
        _verify_files(temporary, manifest, manifest["networks"])  # the copy, not just the source

    replace_atomically(Path(os.path.abspath(directory)), copy_files, MANIFEST_NAME, _save_error)
    return manifest


def _save_error(directory, error):
    """What went wrong while saving to `directory`, and what is left of the checkpoint there:
    the `CheckpointSaveError` that `replace_atomically` raises for a file system's `OSError`."""
    previous = newest_aside(directory, MANIFEST_NAME) if not directory.exists() else directory
    kept = (f"the previous checkpoint {previous} is intact" if previous is not None
            and (previous / MANIFEST_NAME).is_file() else "no checkpoint was there before")
    if error.errno == errno.ENOSPC:
        message = (f"no space left on device while saving {directory}; {kept}. Free some space "
                   "(or choose a folder on another disk) and run again.")
    else:
        reason = error.strerror or str(error)
        if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            reason += f" (is {directory.parent} read-only, or owned by someone else?)"
        message = f"cannot save {directory}: {reason}; {kept}."
    save_error = CheckpointSaveError(message)
    save_error.errno = error.errno
    return save_error


def _check_free_space(folder, networks):
    """Raises ENOSPC before writing when the weights would not fit (see the module docstring)."""
    variables = [variable for network in networks.values()
                 for variable in getattr(network, "weights", ())]
    needed = _HDF5_BYTES_PER_FILE * len(networks) + sum(
        _HDF5_BYTES_PER_VARIABLE + np.dtype(variable.dtype).itemsize * math.prod(variable.shape)
        for variable in variables)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise OSError(errno.ENOSPC, f"{free} bytes free, about {needed} needed", str(folder))


def library_versions():
    """The versions that produced a checkpoint: Python, Keras and its backend, NumPy, and us."""
    versions = {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "numpy": np.__version__,
        "diffusion_course": _package_version(),
    }
    # installed metadata, not imports: importing TensorFlow under JAX would cost seconds
    for package in ("tensorflow", "jax", "jaxlib", "torch", "h5py"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _package_version():
    try:
        return importlib.metadata.version("diffusion-course")
    except importlib.metadata.PackageNotFoundError:
        from diffusion_course import __version__

        return __version__


def manifest_digest(manifest):
    """The sha256 of a manifest's contents without its seal: canonical JSON, sorted keys."""
    contents = {key: value for key, value in manifest.items() if key != SEAL_FIELD}
    text = json.dumps(contents, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _write_json(path, value):
    with open(path, "w", encoding="utf-8") as file:
        json.dump(value, file, indent=2, sort_keys=True)
        file.write("\n")
        file.flush()
        os.fsync(file.fileno())


def file_sha256(path):
    """The sha256 of a file, as a hex string (read in chunks: weights may be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _integer(value, name):
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name}={value!r} must be an integer (or a NumPy integer).") from None


def _json_ready(value, name):
    """`value` as plain JSON types: NumPy and backend scalars and arrays become numbers/lists."""

    def convert(item):
        if hasattr(item, "__array__"):  # NumPy, TensorFlow, JAX and Keras values alike
            return np.asarray(item).tolist()
        if isinstance(item, (tuple, set, frozenset)):
            return list(item)
        raise TypeError(
            f"{name} holds {item!r:.60}, of type {type(item).__name__}, which JSON cannot store. "
            "Convert it to a number, string, list or dict first."
        )

    return json.loads(json.dumps(value, default=convert))


def _check_networks(networks):
    if not isinstance(networks, Mapping) or not networks:
        raise TypeError(
            f"networks must be a non-empty dict name -> keras.Model, e.g. "
            f"{{'network': network, 'ema_network': ema_network}}; got {type(networks).__name__}."
        )
    for name, network in networks.items():
        if not isinstance(name, str) or not _NETWORK_NAME.fullmatch(name):
            raise ValueError(
                f"Network name {name!r} cannot be a file name: use letters, digits, '_', '.' "
                "and '-', not starting with '.' or '-'."
            )
        if not (callable(getattr(network, "save_weights", None))
                and callable(getattr(network, "load_weights", None))):
            raise TypeError(
                f"networks[{name!r}] is a {type(network).__name__}, which has no "
                "save_weights/load_weights. Pass a keras.Model; to keep an optimizer's state, "
                "pass the compiled model that holds it."
            )


# ---- reading and loading -------------------------------------------------------------------


def read_manifest(directory):
    """The manifest of the checkpoint at `directory`, checked for shape but not for hashes."""
    return _read_manifest_in(_existing_checkpoint(directory))


def verify_checkpoint(directory):
    """Checks that every listed file exists and has its recorded sha256; returns the manifest."""
    folder = _existing_checkpoint(directory)
    manifest = _read_manifest_in(folder)
    _verify_files(folder, manifest, manifest["networks"])
    return manifest


def load_checkpoint(directory, networks, config=None):
    """Loads the weights of `networks` (a dict name -> keras.Model) and returns the manifest.

    The names may be a subset of those saved (e.g. only "ema_network" for sampling). With
    `config`, every field outside `RUNTIME_FIELDS` must equal the saved one. Every file is
    checked against its sha256 before any weights are loaded.
    """
    folder = _existing_checkpoint(directory)
    manifest = _read_manifest_in(folder)
    _check_networks(networks)
    unknown = sorted(set(networks) - set(manifest["networks"]))
    if unknown:
        raise CheckpointMismatchError(
            f"The checkpoint at {folder} has no network(s) {unknown}; it holds "
            f"{sorted(manifest['networks'])}. Use those names as the keys of `networks`."
        )
    if config is not None:
        _check_config(config, manifest, folder)
    _verify_files(folder, manifest, networks)
    for name, network in networks.items():
        path = folder / manifest["networks"][name]["file"]
        try:
            network.load_weights(str(path))
        except OSError as error:  # h5py: not an HDF5 file, though its sha256 matches
            raise CheckpointCorruptError(
                f"{path} cannot be read as a weights file ({error}), although it has the sha256 "
                "that its manifest records: the checkpoint was written wrongly. Regenerate it."
            ) from error
        except ValueError as error:
            raise CheckpointMismatchError(
                f"Network {name!r} does not fit the weights in {path}: "
                f"{str(error).splitlines()[0]} Build it from the checkpoint's own configuration, "
                f"{manifest['config_class']}.from_dict(read_manifest({str(folder)!r})['config'])."
            ) from error
    return manifest


def _existing_checkpoint(directory):
    """`directory`, or the copy that a killed save left renamed aside, or a clear error."""
    directory = Path(os.path.abspath(directory))
    if directory.is_dir():
        return directory
    if directory.exists():
        raise CheckpointNotFoundError(
            f"{directory} is a file, but a checkpoint is a folder holding {MANIFEST_NAME}. "
            "Pass the folder that save_checkpoint wrote."
        )
    aside = newest_aside(directory, MANIFEST_NAME)
    if aside is not None:
        warnings.warn(
            f"{directory} is missing because a save was killed while swapping folders; loading "
            f"the previous checkpoint from {aside.name}. The next save_checkpoint to this path "
            "puts it back.",
            stacklevel=3,
        )
        return aside
    raise CheckpointNotFoundError(
        f"There is no checkpoint at {directory}: the folder does not exist. Check the path, or "
        "write one first with save_checkpoint."
    )


def _read_manifest_in(folder):
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise CheckpointCorruptError(
            f"{folder} has no {MANIFEST_NAME}: it is not a folder written by save_checkpoint, or "
            "its copy is incomplete. Point at the folder that holds the manifest, or re-copy it."
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointCorruptError(
            f"{path} is not valid JSON ({error}): the file is truncated or was modified; "
            "re-copy it or regenerate the checkpoint."
        ) from error
    networks = manifest.get("networks") if isinstance(manifest, dict) else None
    if not isinstance(networks, dict) or not all(
        isinstance(entry, dict) and isinstance(entry.get("file"), str)
        and Path(entry["file"]).name == entry["file"] and isinstance(entry.get("sha256"), str)
        for entry in networks.values()
    ):
        raise CheckpointCorruptError(
            f"{path} does not list its networks as name -> {{'file', 'sha256'}} inside the "
            "folder: it was modified or is not a diffusion_course manifest. Re-copy or regenerate."
        )
    format_version = manifest.get("format_version")
    if isinstance(format_version, int) and format_version < FORMAT_VERSION:
        raise CheckpointMismatchError(
            f"{path} is a manifest of format {format_version}, written by an older "
            f"diffusion_course before manifests were sealed; this library reads format "
            f"{FORMAT_VERSION} only. Regenerate the checkpoint: the reference checkpoints with "
            "`python -m diffusion_course references --profile quick` (or full), a run of your "
            "own by training it again (`python -m diffusion_course train`)."
        )
    if format_version != FORMAT_VERSION:
        raise CheckpointMismatchError(
            f"{path} has format version {format_version!r}, but this library reads format "
            f"{FORMAT_VERSION} only. Update diffusion_course, or regenerate the checkpoint."
        )
    if manifest.get(SEAL_FIELD) != manifest_digest(manifest):
        raise CheckpointCorruptError(
            f"{path} was modified after it was saved: its contents no longer match its "
            f"{SEAL_FIELD}. A hand-edited configuration (noise schedule, image size) would "
            "silently change what the weights mean; re-copy the checkpoint or regenerate it."
        )
    _check_manifest_fields(manifest, path)
    return manifest


# the manifest's fields that the library reads, with the types they must have
_MANIFEST_FIELDS = {"config_class": (str, type(None)), "config": (dict, type(None)),
                    "profile": (str, type(None)), "step": (int,), "seed": (int, type(None)),
                    "extra": (dict,)}


def _check_manifest_fields(manifest, path):
    problems = [f"{name} is missing" if name not in manifest else f"{name} is {manifest[name]!r}"
                for name, types in _MANIFEST_FIELDS.items()
                if not isinstance(manifest.get(name), types) or isinstance(manifest.get(name), bool)
                or name not in manifest]
    problems += [f"size_bytes of network {name!r} is {entry.get('size_bytes', '(missing)')!r}"
                 for name, entry in manifest["networks"].items()
                 if not isinstance(entry.get("size_bytes"), int)]
    if problems:
        raise CheckpointCorruptError(
            f"{path} is not a complete diffusion_course manifest: {'; '.join(problems)}. It was "
            "modified or written by other software; re-copy the checkpoint or regenerate it."
        )


def _verify_files(folder, manifest, names):
    for name in names:
        entry = manifest["networks"][name]
        path = folder / entry["file"]
        if not path.is_file():
            raise CheckpointCorruptError(
                f"{path} is missing, but the manifest lists it for network {name!r}. "
                "Re-copy the whole checkpoint folder or regenerate it."
            )
        actual = file_sha256(path)
        if actual != entry["sha256"]:
            raise CheckpointCorruptError(
                f"{path} is corrupt: its sha256 is {actual}, but the manifest expects "
                f"{entry['sha256']} ({path.stat().st_size} bytes found, "
                f"{entry.get('size_bytes', 'unknown')} recorded). The file is truncated or was "
                "modified; re-copy it or regenerate it."
            )


def _check_config(config, manifest, folder):
    expected_class = type(config).__name__
    if manifest.get("config_class") != expected_class:
        raise CheckpointMismatchError(
            f"The checkpoint at {folder} was saved with config class "
            f"{manifest.get('config_class')!r}, but a {expected_class} was given. Load it into "
            "the model family it was trained for."
        )
    expected = _json_ready(config.to_dict(), "config")
    found = manifest.get("config") or {}
    if found:  # a field added after the checkpoint was saved holds its default, as it did then
        found = {**_json_ready(type(config)().to_dict(), "config"), **found}
    missing = "(missing)"
    differences = [
        f"  {field}: expected {expected.get(field, missing)!r}, "
        f"checkpoint has {found.get(field, missing)!r}"
        for field in sorted(set(expected) | set(found))
        if field not in RUNTIME_FIELDS and expected.get(field, missing) != found.get(field, missing)
    ]
    if differences:
        raise CheckpointMismatchError(
            f"The checkpoint at {folder} was trained with a different configuration. These "
            "fields define the networks' weights or the noise schedule, so they must match:\n"
            + "\n".join(differences)
            + f"\nLoad it with its own configuration, {expected_class}.from_dict("
            f"read_manifest({str(folder)!r})['config']), or train a new one."
        )
