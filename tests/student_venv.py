"""A virtual environment in which this repository is not importable, for the student bundle.

It sees this test environment's third-party packages (TensorFlow, Jupyter, ...) through a .pth
file that names their folder, so nothing is installed twice; the course's wheels go into it
with --no-deps. A .pth line that is a plain folder adds only that folder: the .pth files inside
it, such as the editable install of this repository, are not run, so `diffusion_course` comes
from the wheel or from nowhere.
"""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path


def clean_environment():
    """os.environ without PYTHONPATH (nbgrader's configuration puts the repository there)."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}


def make_student_venv(folder):
    """A venv at `folder` that shares this environment's packages; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = Path(folder) / "bin" / "python"
    site_packages = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True, env=clean_environment()).stdout.strip()
    shared = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    Path(site_packages, "shared_packages.pth").write_text("\n".join(sorted(shared)) + "\n")
    return python


def pip_install(python, *wheels):
    """Installs wheels into the venv of `python` with this environment's pip, --no-deps."""
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                    "--quiet", "--no-deps", "--no-index", *map(str, wheels)],
                   check=True, env=clean_environment())


def run_python(python, code, cwd):
    """Runs `code` with the venv's python in `cwd`; returns what it printed."""
    result = subprocess.run([str(python), "-c", code], cwd=cwd, capture_output=True, text=True,
                            env=clean_environment())
    assert result.returncode == 0, result.stderr
    return result.stdout


def write_kernelspec(python, jupyter_folder, name):
    """A Jupyter kernel `name` that runs in the venv of `python`, under `jupyter_folder`."""
    spec = Path(jupyter_folder) / "kernels" / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": name, "language": "python"}))
