"""Assembles a bundle folder: the part's wheel, its files, how to install them, its README.

The bundle is staged beside `out` and moved into place only once it is complete and checked, so
a failed build leaves `out` as it was. The student bundle is refused when the no-answers check
finds a solution function in it, or when its code or notebooks need the design space.
"""

import re
import shutil
import tempfile
from pathlib import Path
from string import Template

from autograder.bundle import no_answers
from autograder.bundle.imports import design_space_imports
from autograder.bundle.parts import REPO_ROOT, pinned_requirements
from autograder.bundle.variant import SETTING, write_setting
from autograder.bundle.wheel import build_wheel
from diffusion_course import __version__

TEMPLATES = Path(__file__).resolve().parent
WHEELS = "wheels"
SKIPPED = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")


class BundleError(Exception):
    """The bundle cannot be built as asked; the message says why and what to do."""


def check_out(out, force):
    """Refuses a file, and a non-empty folder unless `force` (whose contents it replaces)."""
    if out.exists() and not out.is_dir():
        raise BundleError(f"--out {out} is a file: give a folder for the bundle.")
    entries = sorted(entry.name for entry in out.iterdir()) if out.is_dir() else []
    if entries and not force:
        raise BundleError(
            f"--out {out} is not empty (it holds {', '.join(entries[:5])}"
            f"{', ...' if len(entries) > 5 else ''}): choose a new or empty folder, or add "
            "--force to replace everything in it.")


def check_no_design_space(sources):
    """Refuses sources ([(where, code)]) of the student part that import the design space."""
    reaching = [f"{where}, line {line}: imports {module}" for where, source in sources
                for line, module in design_space_imports(source)]
    if reaching:
        raise BundleError(
            "The student part needs the design space, which the student bundle leaves out:\n  "
            + "\n  ".join(reaching) + "\nImport it inside a try that catches ImportError and "
            "says what is missing, or move the module to DESIGN_SPACE_MODULES "
            "(autograder/bundle/parts.py).")


def notebook_sources(folder):
    """[(where, code)] of every notebook in a folder."""
    return [piece for notebook in sorted(Path(folder).rglob("*.ipynb"))
            for piece in no_answers.python_pieces(notebook.relative_to(folder).as_posix(),
                                                  notebook)]


def check_no_answers(staged):
    findings = no_answers.find_answers(staged)
    if findings:
        raise BundleError("The student bundle would hand out the answers:\n  "
                          + "\n  ".join(str(finding) for finding in findings)
                          + "\nRemove them from the part (autograder/bundle/parts.py).")


def python_version(repo_root=REPO_ROOT):
    """The Python version that the course's environment.yml asks for."""
    return re.search(r"-\s*python=(\S+)", (repo_root / "environment.yml").read_text()).group(1)


def write_install_files(staged, wheel_path, repo_root=REPO_ROOT):
    """requirements.txt and environment.yml: the pinned packages, then the course's wheel."""
    lines = pinned_requirements(repo_root=repo_root) + [f"./{WHEELS}/{wheel_path.name}"]
    (staged / "requirements.txt").write_text(
        "# From this folder: pip install -r requirements.txt\n"
        "# The course library (the wheel) and the packages it needs, at the course's versions;\n"
        "# environment.yml installs the same with conda.\n" + "\n".join(lines) + "\n")
    (staged / "environment.yml").write_text(
        "# From this folder: conda env create -f environment.yml && conda activate "
        "diffusion-course\n"
        "# The same packages and the same wheel as requirements.txt.\n"
        "name: diffusion-course\nchannels:\n  - conda-forge\ndependencies:\n"
        f"  - python={python_version(repo_root)}\n  - pip\n  - pip:\n"
        + "".join(f"      - {line}\n" for line in lines))


def build_bundle(part, out, force=False, repo_root=REPO_ROOT, variant_name=None):
    """Builds `part` (parts.STUDENT or parts.DESIGN_SPACE) into the folder `out`; returns it.

    variant_name: the assignment variant that the student wheel names (default: the
    repository's setting, diffusion_course/course_variant.py)."""
    out = Path(out).absolute()
    check_out(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}-", dir=out.parent) as work:
        staged = Path(work) / part.name
        library_files = part.library_files(repo_root)
        if variant_name is not None and SETTING in library_files:
            library_files[SETTING] = write_setting(variant_name, Path(work) / "setting")
        if not part.design_space:
            check_no_design_space([(inside, path.read_text())
                                   for inside, path in library_files.items()])
        dependencies = ([f"diffusion-course-student=={__version__}"] if part.design_space
                        else pinned_requirements(repo_root=repo_root))
        wheel_path = build_wheel(part.distribution, __version__, part.summary,
                                 library_files, dependencies, staged / WHEELS)
        for name in part.files:
            source, target = repo_root / name, staged / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=SKIPPED)
            else:
                shutil.copyfile(source, target)
        readme = Template((TEMPLATES / part.readme).read_text())
        (staged / "README.md").write_text(readme.substitute(wheel=wheel_path.name,
                                                            version=__version__))
        if not part.design_space:
            write_install_files(staged, wheel_path, repo_root)
            check_no_design_space(notebook_sources(staged))
            check_no_answers(staged)
        if out.exists():
            shutil.rmtree(out)
        staged.rename(out)
    return out
