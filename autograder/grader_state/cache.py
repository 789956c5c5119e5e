"""The grader's cache of measurements: private to the grading user, checked before each use.

Each entry is a JSON file named by the SHA-256 of what it describes (the kind of run, the
configuration, the seed, the budget, the KID features, the versions and a hash of all the code
involved), and holds that description and its own SHA-256. An entry is used only if it is a
regular file (never a link), owned by this user, smaller than its size cap, and its content
matches its hash and its name; anything else is a miss and is measured again.
"""

import errno
import hashlib
import importlib.metadata
import json
import os
import stat
from pathlib import Path

from autograder.errors import GraderError
from autograder.intake.no_follow import open_no_follow

MAX_ENTRY_BYTES = 2**20
CODE_ROOT = Path(__file__).resolve().parents[2]


def default_cache_dir():
    return Path(os.environ.get("DIFFUSION_GRADER_CACHE")
                or Path.home() / ".cache" / "diffusion-course" / "grader")


def code_hash(extra_files=()):
    """The SHA-256 of all the code that a training run or its measurement depends on."""
    digest = hashlib.sha256()
    folders = (CODE_ROOT / "diffusion_course", CODE_ROOT / "autograder" / "runner",
               CODE_ROOT / "autograder" / "grader_state", CODE_ROOT / "autograder" / "assignment")
    files = sorted([*(path for folder in folders for path in folder.rglob("*.py")),
                    *map(Path, extra_files)])
    for path in files:
        digest.update(path.relative_to(CODE_ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def keras_identity():
    """{"backend", "keras"}: which Keras computes here, named without importing it (a grading
    whose results are all cached starts no TensorFlow). The backend follows the rule that Keras
    follows when it is imported: $KERAS_BACKEND, else the "backend" of
    $KERAS_HOME/keras.json (~/.keras), else tensorflow. Keras itself is never asked: while the
    evaluator imports it in another thread (`Evaluator.prepare_in_background`),
    `sys.modules["keras"]` is a half-made module."""
    backend = os.environ.get("KERAS_BACKEND") or _keras_json_backend() or "tensorflow"
    return {"backend": backend, "keras": importlib.metadata.version("keras")}


def _keras_json_backend():
    keras_home = os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras")))
    try:
        with open(os.path.join(keras_home, "keras.json")) as settings:
            return json.load(settings).get("backend")
    except (OSError, ValueError, AttributeError):
        return None


def _canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class MetricsCache:
    """A folder of {description: metrics} entries that only the grading user can touch."""

    def __init__(self, folder, max_entry_bytes=MAX_ENTRY_BYTES):
        self.folder = Path(folder)
        self.max_entry_bytes = max_entry_bytes
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            status = os.stat(self.folder, follow_symlinks=False)
        except OSError as error:
            raise GraderError(f"the grader's cache {self.folder} cannot be used: {error}") from None
        if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.getuid():
            raise GraderError(f"the grader's cache {self.folder} is not a folder owned by this "
                              f"user (uid {os.getuid()}): refusing to trust it")
        if status.st_mode & 0o077:
            os.chmod(self.folder, 0o700)  # private: no other user may read or plant entries

    def _path(self, description):
        digest = hashlib.sha256(_canonical(description).encode()).hexdigest()
        return self.folder / f"{description['kind']}-{digest[:32]}.json"

    def get(self, description):
        """The cached metrics of `description`, or None (missing, or failed its checks)."""
        path = self._path(description)
        try:
            entry_file = open_no_follow(path)
        except FileNotFoundError:
            return None
        except OSError as error:
            if error.errno == errno.ELOOP:
                return None  # a link: never followed, measured again and replaced
            raise GraderError(f"the grader's cache entry {path} cannot be read: {error}") from None
        with entry_file:
            status = os.fstat(entry_file.fileno())
            if (not stat.S_ISREG(status.st_mode) or status.st_uid != os.getuid()
                    or status.st_size > self.max_entry_bytes):
                return None
            content = entry_file.read(self.max_entry_bytes + 1)
        try:
            entry = json.loads(content)
            body = {"description": entry["description"], "metrics": entry["metrics"]}
            intact = hashlib.sha256(_canonical(body).encode()).hexdigest() == entry["sha256"]
        except (ValueError, KeyError, TypeError):
            return None
        # compared as JSON: a description's tuples come back from the file as lists
        matches = _canonical(entry["description"]) == _canonical(description)
        return entry["metrics"] if intact and matches else None

    def put(self, description, metrics):
        """Writes atomically (parallel graders share the cache); returns `metrics`."""
        body = {"description": description, "metrics": metrics}
        entry = {**body, "sha256": hashlib.sha256(_canonical(body).encode()).hexdigest()}
        path = self._path(description)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                                 0o600)
            with os.fdopen(descriptor, "w") as entry_file:
                entry_file.write(json.dumps(entry))
            os.replace(temporary, path)
        except OSError as error:
            raise GraderError(f"the grader's cache entry {path} cannot be written: "
                              f"{error}") from None
        return metrics
