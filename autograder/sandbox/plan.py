"""The sandbox's filesystem as bubblewrap arguments, built from an allow-list.

The new root starts empty. Only the system folders, the Python environment, the library and the
paths the caller names are mounted into it; everything else (the course folder, the solutions,
the gradebook, other students, the grader's caches, the instructor's home) is simply not there.
Nothing is listed or covered, so a file that appears or vanishes in the course folder while a
class is graded cannot break the plan.
"""

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


def python_paths():
    """The Python environment (a venv) and the interpreter it was made from, read-only. The venv
    is found from the executable, as `site` finds it: the wrapper starts without `site` (-S)."""
    paths = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    venv = Path(sys.executable).absolute().parent.parent
    if (venv / "pyvenv.cfg").is_file():
        paths.add(venv.resolve())
    return sorted(paths)


def library_paths():
    """The course library, read-only: this checkout's, and the installed one if elsewhere."""
    paths = {REPO_ROOT / "diffusion_course"}
    # an editable install records its source folder (PEP 610)
    for environment in python_paths():
        for record in environment.glob("lib/python*/site-packages/diffusion_course-*.dist-info/"
                                       "direct_url.json"):
            try:
                url = urlparse(json.loads(record.read_text()).get("url", ""))
            except (OSError, ValueError):
                continue
            if url.scheme == "file":
                paths.add(Path(unquote(url.path)) / "diffusion_course")
    return sorted(path for path in paths if path.is_dir())


def _depth(path):
    return len(Path(path).parts)


class Plan:
    """Mounts keyed by their path inside; applied shallowest first, so deeper ones win.

    data_fd(content) returns a descriptor that bwrap reads `content` from (for a file that is a
    copy: a masked file, the kernel's connection file).
    """

    def __init__(self, tmpfs_bytes, data_fd):
        self.tmpfs_bytes = tmpfs_bytes
        self.data_fd = data_fd
        # path -> ("ro" | "rw" | "tmpfs" | "symlink" | "data" | "mask-dir", source)
        self.mounts = {}

    def read_only(self, path):
        self.mounts[str(path)] = ("ro", str(path))

    def writable(self, path):
        self.mounts[str(path)] = ("rw", str(path))

    def private(self, path):
        """A fresh, empty, size-capped tmpfs that only this sandbox sees."""
        self.mounts[str(path)] = ("tmpfs", None)

    def copy(self, path, content):
        """A read-only file holding `content`: its original need not be readable inside."""
        self.mounts[str(path)] = ("data", str(self.data_fd(content)))

    def mask(self, path):
        if Path(path).is_dir():
            self.mounts[str(path)] = ("mask-dir", None)
        else:  # a copy of nothing: device files such as /dev/null do not open on nodev mounts
            self.copy(path, b"")

    def bwrap_arguments(self):
        arguments = ["--proc", "/proc", "--dev", "/dev"]
        made = {"/", "/proc", "/dev"}
        for path in sorted(self.mounts, key=_depth):
            for parent in reversed(Path(path).parents):
                if str(parent) not in made:
                    arguments += ["--perms", "0755", "--dir", str(parent)]
                    made.add(str(parent))
            made.add(path)
            kind, source = self.mounts[path]
            arguments += {
                "ro": ["--ro-bind", source, path],
                "rw": ["--bind", source, path],
                # every process inside has the sandbox's one uid: world-writable is private here
                "tmpfs": ["--size", str(self.tmpfs_bytes), "--perms", "01777", "--tmpfs", path],
                "symlink": ["--symlink", str(source), path],
                "data": ["--perms", "0444", "--ro-bind-data", str(source), path],
                "mask-dir": ["--size", "4096", "--perms", "0555", "--tmpfs", path,
                             "--remount-ro", path],
            }[kind]
        # the folders made above to hold the mounts: not a place to write
        return [*arguments, "--remount-ro", "/"]


def build(allow, write, mask, private_cwd, tmpfs_bytes, data_fd, copies=()):
    """The plan for a sandbox that sees `allow` read-only, `write` read-write, `copies`
    ({path: content}) as read-only copies, and `mask` as empty."""
    plan = Plan(tmpfs_bytes, data_fd)
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
    for path, content in dict(copies).items():
        plan.copy(path, content)
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
