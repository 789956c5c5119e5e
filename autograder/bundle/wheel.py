"""A wheel of one part of the library, built from a staging copy with its own pyproject.toml.

The staging folder holds only the part's modules, so nothing else can slip into the wheel, and
setuptools builds it through the standard build hook (PEP 517), offline, with the setuptools of
this environment. The design space's wheel has no `diffusion_course/__init__.py`: it adds
modules to the package that the student wheel installs, and owns none of the student's files.
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path, PurePosixPath

# PEP 517's build_wheel hook, run in the staging folder; prints the wheel's file name
BUILD_HOOK = ("import sys; from setuptools import build_meta; "
              "print(build_meta.build_wheel(sys.argv[1]))")


class WheelBuildError(RuntimeError):
    """setuptools could not build the wheel; the message has its output."""


def pyproject(distribution, version, summary, packages, dependencies):
    """The staging copy's pyproject.toml (JSON strings are valid TOML strings)."""
    return "\n".join([
        "[build-system]",
        'requires = ["setuptools>=61"]',
        'build-backend = "setuptools.build_meta"',
        "",
        "[project]",
        f"name = {json.dumps(distribution)}",
        f"version = {json.dumps(version)}",
        f"description = {json.dumps(summary)}",
        'requires-python = ">=3.10"',
        f"dependencies = {json.dumps(list(dependencies))}",
        "",
        "[tool.setuptools]",
        f"packages = {json.dumps(sorted(packages))}",
        "",
    ])


def build_wheel(distribution, version, summary, library_files, dependencies, out_dir):
    """Builds the wheel of `library_files` ({path inside the wheel: source file}) into
    `out_dir`; returns its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    packages = {str(PurePosixPath(inside).parent).replace("/", ".") for inside in library_files}
    with tempfile.TemporaryDirectory(prefix="wheel-staging-") as staging:
        staging = Path(staging)
        for inside, source in library_files.items():
            (staging / inside).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, staging / inside)
        (staging / "pyproject.toml").write_text(
            pyproject(distribution, version, summary, packages, dependencies))
        result = subprocess.run([sys.executable, "-c", BUILD_HOOK, str(out_dir.resolve())],
                                cwd=staging, capture_output=True, text=True)
        if result.returncode != 0:
            raise WheelBuildError(
                f"setuptools could not build the {distribution} wheel (it needs "
                "setuptools>=61 and, before setuptools 70.1, wheel: pip install setuptools "
                f"wheel):\n{result.stderr[-3000:]}")
    return out_dir / result.stdout.strip().splitlines()[-1]
