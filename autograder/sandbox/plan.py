"""The sandbox's filesystem as bubblewrap arguments, built from an allow-list.

The new root starts empty. Only the system folders, the Python environment, the library and the
paths the caller names are mounted into it; everything else (the course folder, the solutions,
the gradebook, other students, the grader's caches, the instructor's home) is simply not there.
Nothing is listed or covered, so a file that appears or vanishes in the course folder while a
class is graded cannot break the plan.
"""

import importlib.metadata
import json
import os
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

REPO_ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
CPU_INFO = "/sys/devices/system/cpu"  # TensorFlow and numpy count the CPUs here
SANDBOX_HOME = "/home/sandbox"
# what the sandboxed command may learn from the caller's environment: nothing secret
ENVIRONMENT_NAMES = ("PATH", "LANG", "LANGUAGE", "TERM", "PYTHONPATH", "PYTHONHASHSEED",
                     "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONWARNINGS",
                     "MPLBACKEND", "JPY_SESSION_NAME")
ENVIRONMENT_PREFIXES = ("LC_", "TF_", "KERAS_", "JAX_", "XLA_", "OMP_", "MKL_", "OPENBLAS_",
                        "CUDA_", "NVIDIA_", "NBGRADER_", "DDIM_", "DIFFUSION_")


def library_paths():
    """The course library, read-only: this checkout's, and the installed one if elsewhere."""
    paths = {REPO_ROOT / "diffusion_course"}
    try:  # an editable install records its source folder (PEP 610)
        direct_url = importlib.metadata.distribution("diffusion-course").read_text(
            "direct_url.json")
        url = urlparse(json.loads(direct_url or "{}").get("url", ""))
        if url.scheme == "file":
            paths.add(Path(unquote(url.path)) / "diffusion_course")
    except (importlib.metadata.PackageNotFoundError, ValueError):
        pass
    return sorted(path for path in paths if path.is_dir())


def python_paths():
    """The Python environment (a venv) and the interpreter it was made from, read-only."""
    return sorted({Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()})


def _depth(path):
    return len(Path(path).parts)


class Plan:
    """Mounts keyed by their path inside; applied shallowest first, so deeper ones win."""

    def __init__(self, tmpfs_bytes):
        self.tmpfs_bytes = tmpfs_bytes
        # path -> ("ro" | "rw" | "tmpfs" | "symlink" | "mask-file" | "mask-dir", source)
        self.mounts = {}

    def read_only(self, path, source=None):
        self.mounts[str(path)] = ("ro", str(source or path))

    def writable(self, path):
        self.mounts[str(path)] = ("rw", str(path))

    def private(self, path):
        """A fresh, empty, size-capped tmpfs that only this sandbox sees."""
        self.mounts[str(path)] = ("tmpfs", None)

    def masked_files(self):
        return sum(kind == "mask-file" for kind, _ in self.mounts.values())

    def mask(self, path):
        kind = "mask-dir" if Path(path).is_dir() else "mask-file"
        self.mounts[str(path)] = (kind, None)

    def bwrap_arguments(self, empty_fds):
        """The arguments; a masked file takes one of `empty_fds` (each open on /dev/null)."""
        empty_fds = iter(empty_fds)
        arguments = ["--proc", "/proc", "--dev", "/dev"]
        made = {"/", "/proc", "/dev"}
        for path in sorted(self.mounts, key=_depth):
            for parent in reversed(Path(path).parents):
                if str(parent) not in made:
                    arguments += ["--perms", "0755", "--dir", str(parent)]
                    made.add(str(parent))
            made.add(path)
            kind, source = self.mounts[path]
            if kind == "ro":
                arguments += ["--ro-bind", source, path]
            elif kind == "rw":
                arguments += ["--bind", source, path]
            elif kind == "tmpfs":
                # every process inside has the sandbox's one uid: world-writable is private here
                arguments += ["--size", str(self.tmpfs_bytes), "--perms", "01777", "--tmpfs", path]
            elif kind == "symlink":
                arguments += ["--symlink", source, path]
            elif kind == "mask-dir":
                arguments += ["--size", "4096", "--perms", "0555", "--tmpfs", path,
                              "--remount-ro", path]
            else:  # a copy of nothing: device files do not open on nodev mounts
                arguments += ["--perms", "0444", "--ro-bind-data", str(next(empty_fds)), path]
        # the folders made above to hold the mounts: not a place to write
        return [*arguments, "--remount-ro", "/"]


def build(allow, write, mask, private_cwd, tmpfs_bytes):
    """The plan for a sandbox that sees `allow` read-only and `write` read-write."""
    plan = Plan(tmpfs_bytes)
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            plan.mounts[path] = ("symlink", os.readlink(path))  # /bin -> usr/bin
        elif os.path.isdir(path):
            plan.read_only(path)
    if os.path.isdir(CPU_INFO):
        plan.read_only(CPU_INFO)
    for path in [*python_paths(), *library_paths(), *allow]:
        plan.read_only(path)
    plan.private("/tmp")
    plan.private("/dev/shm")
    plan.private(SANDBOX_HOME)
    for path in write:
        plan.writable(path)
    if private_cwd:
        plan.private(os.getcwd())
    for path in mask:
        plan.mask(path)
    return plan


def environment(extra=()):
    """bwrap arguments that give the command a clean environment: allowed names only."""
    arguments = ["--clearenv"]
    for name, value in os.environ.items():
        if name in ENVIRONMENT_NAMES or name.startswith(ENVIRONMENT_PREFIXES):
            arguments += ["--setenv", name, value]
    for name, value in [("HOME", SANDBOX_HOME), ("TMPDIR", "/tmp"), *extra]:
        arguments += ["--setenv", name, value]
    return arguments
