"""The Python that runs the students' servers: Jupyter, TensorFlow and the student wheel, and
nothing of this repository.

A virtual environment in the hub's folder. Its packages are hard links to this environment's
(one `cp -al`, under a second for 70,000 files, and no second copy of TensorFlow on disk),
less the editable install of this repository; the student bundle's wheel is installed on top.
Hard links, not a .pth naming our site-packages, because our environment may sit inside the
repository (CI's .ci-venv), which the hub makes unreadable to students. It is made once and
reused until this environment's packages or the wheel change.

Its etc/jupyter holds what every student's server reads: nbgrader's assignment list (not the
formgrader), and the exchange's place and private submit (`student_exchange.py`).
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from autograder.hub import student_exchange

# what of our site-packages a student's Python must not have: the editable install of this
# repository (its finder would import the library's answers from the repository)
EXCLUDED_PREFIXES = ("__editable__", "diffusion_course", "diffusion-course")
# the server extensions a student's server runs
STUDENT_EXTENSIONS = {
    "nbgrader.server_extensions.formgrader": False,
    "nbgrader.server_extensions.course_list": False,
    "nbgrader.server_extensions.validate_assignment": True,
    "nbgrader.server_extensions.assignment_list": True,
}


def usable_by_everyone(path):
    """Whether any user may run `path`: the file o+rx and every folder above it o+x."""
    path = Path(path).resolve()
    if not path.is_file() or path.stat().st_mode & 0o005 != 0o005:
        return False
    return all(parent.stat().st_mode & 0o001 for parent in path.parents)


def base_python():
    """A Python of this version that students may run: this environment's base, or else the
    system's (a base under /root, as pyenv's, is root's alone; extension modules built for
    3.X run on any 3.X)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [getattr(sys, "_base_executable", sys.executable),
                  f"/usr/bin/{version}", f"/usr/local/bin/{version}"]
    for candidate in candidates:
        if usable_by_everyone(candidate):
            return candidate
    raise SystemExit(f"No {version} that students may run: {', '.join(candidates)} are not "
                     f"readable by all users. Install the system's {version}.")


def python_path(folder):
    return Path(folder) / "bin" / "python"


def site_packages(folder):
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return Path(folder) / "lib" / version / "site-packages"


def fingerprint(wheel):
    """What the environment is made from: a base Python, our packages, and the wheel."""
    ours = Path(sysconfig.get_path("purelib"))
    listing = sorted(entry.name for entry in ours.iterdir() if entry.name.endswith(".dist-info"))
    return hashlib.sha256(json.dumps([base_python(), listing, wheel.name, wheel.read_bytes().hex()])
                          .encode()).hexdigest()


def link_tree(source, target):
    """Hard links of `source`'s files in `target` (copies where links cannot cross devices)."""
    target.mkdir(parents=True, exist_ok=True)
    linked = subprocess.run(["cp", "-al", f"{source}/.", str(target)], capture_output=True,
                            text=True)
    if linked.returncode != 0:
        subprocess.run(["cp", "-a", f"{source}/.", str(target)], check=True)


def remove_repository(packages):
    """Deletes the editable install of this repository from `packages`."""
    for entry in packages.iterdir():
        if entry.name.startswith(EXCLUDED_PREFIXES):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def write_settings(folder, exchange_root):
    """The students' Jupyter settings in the environment's etc/jupyter."""
    etc = Path(folder) / "etc" / "jupyter"
    extensions = etc / "jupyter_server_config.d"
    extensions.mkdir(parents=True, exist_ok=True)
    (extensions / "nbgrader.json").unlink(missing_ok=True)  # a hard link: not written through
    (extensions / "nbgrader.json").write_text(json.dumps(
        {"ServerApp": {"jpserver_extensions": STUDENT_EXTENSIONS}}, indent=1))
    # the instructors' menu items (formgrader, course list, create assignment) are not theirs
    labconfig = etc / "labconfig"
    labconfig.mkdir(exist_ok=True)
    (labconfig / "page_config.json").unlink(missing_ok=True)
    (labconfig / "page_config.json").write_text(json.dumps({"disabledExtensions": {
        f"@jupyter/nbgrader:{plugin}": True
        for plugin in ("formgrader", "course-list", "create-assignment")}}, indent=1))
    (etc / "nbgrader_config.py").unlink(missing_ok=True)
    (etc / "nbgrader_config.py").write_text(
        '"""The students\' nbgrader settings (written by python -m autograder.hub start)."""\n'
        "c = get_config()  # noqa: F821\n"
        f"c.Exchange.root = {str(exchange_root)!r}\n"
        "# fetched assignments go to ~/COURSE/ASSIGNMENT: several courses on one hub\n"
        "c.Exchange.path_includes_course = True\n"
        "# submissions only their owner and the graders can read, under a size limit\n"
        f'c.ExchangeFactory.submit = "{student_exchange.__name__.rsplit(".", 1)[1]}'
        '.PrivateSubmit"\n')


def ensure_student_python(folder, wheel, exchange_root):
    """Makes (or reuses) the students' environment at `folder`; returns its python."""
    folder, wheel = Path(folder), Path(wheel)
    stamp = folder / "made-from.sha256"
    wanted = fingerprint(wheel)
    if not (stamp.exists() and stamp.read_text() == wanted):
        shutil.rmtree(folder, ignore_errors=True)
        subprocess.run([base_python(), "-m", "venv", "--without-pip", str(folder)], check=True)
        packages = site_packages(folder)
        shutil.rmtree(packages)
        link_tree(Path(sysconfig.get_path("purelib")), packages)
        remove_repository(packages)
        for shared in ("share/jupyter", "etc/jupyter"):  # lab's files, server extensions
            link_tree(Path(sys.prefix) / shared, folder / shared)
        subprocess.run([sys.executable, "-m", "pip", "--python", str(python_path(folder)),
                        "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                       check=True, env={k: v for k, v in os.environ.items()
                                        if k != "PYTHONPATH"})
        shutil.copyfile(student_exchange.__file__, packages / "student_exchange.py")
        stamp.write_text(wanted)
    write_settings(folder, exchange_root)
    os.chmod(folder, 0o755)
    return python_path(folder)

