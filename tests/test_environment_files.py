"""requirements.txt and environment.yml must install the same packages at the same versions."""

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^\s*(?:-\s+)?([A-Za-z0-9_.\-\[\]]+)==([^\s#]+)")


def pins(path, start_after=None):
    text = path.read_text()
    if start_after:
        text = text.split(start_after, 1)[1]
    found = {}
    for line in text.splitlines():
        match = PIN.match(line)
        if match:
            name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
            found[name] = match.group(2)
    return found


def test_requirements_and_environment_pin_the_same_packages():
    requirements = pins(REPO_ROOT / "requirements.txt")
    environment = pins(REPO_ROOT / "environment.yml", start_after="- pip:")
    assert requirements == environment
    for needed in ["tensorflow", "keras", "tensorflow-datasets", "jupyter", "nbgrader",
                   "matplotlib", "numpy", "pytest", "scipy", "importlib-resources"]:
        assert needed in requirements, f"{needed} is not pinned in requirements.txt"
    assert not any("addons" in name for name in requirements), "tensorflow-addons is end-of-life"
    assert requirements["keras"].startswith("3.")


def test_every_line_of_requirements_is_a_pin_or_a_comment():
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        assert not line.strip() or line.startswith("#") or PIN.match(line), line
