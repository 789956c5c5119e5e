"""What each bundle holds.

The student bundle is the course without the answers: the library's student part as a wheel,
labs 01 and 02, the released assignment and the quick reference checkpoint that the labs load.
The design space (the library's own schedules, prediction types and samplers, which implement the
assignment's three functions, lab 03 and the TA command line) is a second bundle, released after
the deadline and installed on top of the first.
"""

import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LIBRARY = "diffusion_course"

# The design space, as paths inside the library (a folder stands for everything in it).
# schedules.py has the assignment's schedule (AssignmentCosineSchedule), parametrizations.py
# its denoise formula, continuous_samplers.py its DDIM loop and configurable_ddim.py all three;
# the others use them: the multistep samplers' weights, the sampler comparison, the design grid
# and the TA command line (with the reference checkpoints' training fingerprint).
DESIGN_SPACE_MODULES = (
    "schedules.py", "parametrizations.py", "continuous_samplers.py", "multistep_weights.py",
    "configurable_ddim.py", "sampler_comparison.py", "design_grid.py", "cli", "__main__.py",
    "references.py", "training_fingerprint.py", "reference_archives.py", "model_card.py",
    "training_state.py", "runtime.py",
)

# the pinned packages (requirements.txt) that the student part and its notebooks need; the
# grader's, the tests' and the other backend's stay out
STUDENT_REQUIREMENTS = (
    "tensorflow", "keras", "tensorflow-datasets", "scipy", "importlib_resources", "numpy",
    "matplotlib", "pillow", "jupyter", "ipykernel",
)


@dataclass(frozen=True)
class Part:
    """One bundle: its wheel of the library and the repository files copied beside it."""

    name: str
    distribution: str  # the wheel's name on `pip list`
    summary: str
    files: tuple  # repository paths, copied to the same place in the bundle
    readme: str  # the template, in this folder
    design_space: bool  # whether its wheel holds the design space or the student part

    def library_files(self, repo_root=REPO_ROOT):
        """{path inside the wheel: file in the repository} of this part's library modules."""
        library = repo_root / LIBRARY
        chosen = {}
        for path in sorted(library.rglob("*.py")):
            inside = path.relative_to(library)
            module = ".".join((LIBRARY, *inside.with_suffix("").parts))
            if is_design_space_module(module) == self.design_space:
                chosen[f"{LIBRARY}/{inside.as_posix()}"] = path
        return chosen


def is_design_space_module(module):
    """Whether a dotted name (`diffusion_course.cli.train`) lies in the design space."""
    names = module.split(".")
    return len(names) > 1 and names[0] == LIBRARY and (
        names[1] in DESIGN_SPACE_MODULES or f"{names[1]}.py" in DESIGN_SPACE_MODULES)


STUDENT = Part(
    name="student",
    distribution="diffusion-course-student",
    summary="The diffusion-models course library, student part (no assignment answers).",
    files=("lab/01_ddpm_walkthrough.ipynb", "lab/02_ddim_visualisations.ipynb",
           "assignment/ddim/ddim.ipynb", "data/checkpoints/quick/ddpm"),
    readme="student_README.md",
    design_space=False,
)
DESIGN_SPACE = Part(
    name="design-space",
    distribution="diffusion-course-design-space",
    summary="The diffusion-models course library, the DDIM design space and the TA commands.",
    files=("lab/03_design_space.ipynb", "data/checkpoints/quick/ddim",
           "data/checkpoints/quick/prediction_x_loss_weighting.csv"),
    readme="design_space_README.md",
    design_space=True,
)
PARTS = {part.name: part for part in (STUDENT, DESIGN_SPACE)}

PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)")


def pinned_requirements(names=STUDENT_REQUIREMENTS, repo_root=REPO_ROOT):
    """["tensorflow==2.21.0", ...]: `names` at the versions that requirements.txt pins."""
    pins = {}
    for line in (repo_root / "requirements.txt").read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[match.group(1)] = match.group(0)
    missing = [name for name in names if name not in pins]
    if missing:
        raise ValueError(f"requirements.txt pins no version of {missing}; the student bundle "
                         "installs each at the course's pinned version. Pin them there, or "
                         "take them out of STUDENT_REQUIREMENTS (autograder/bundle/parts.py).")
    return [pins[name] for name in names]
