"""The CI rule that a skip fails the run (tests/conftest.py), on a small suite of its own."""

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()
SANDBOX_TEST = """
import pytest
pytestmark = pytest.mark.skipif(True, reason="no sandbox here")
def test_the_sandbox_holds():
    pass
"""


@pytest.fixture
def suite(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_sandbox_here=SANDBOX_TEST)
    pytester.makepyfile(test_import_skip="import pytest\npytest.importorskip('no_such_module')\n"
                                         "def test_anything():\n    pass\n")
    return pytester


def test_in_ci_a_skip_fails_the_run_and_is_named(suite, monkeypatch):
    monkeypatch.setenv("DIFFUSION_COURSE_CI_NO_SKIPS", "1")
    result = suite.runpytest_inprocess("-p", "no:xdist")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*skips that CI does not allow*",
                                 "*test_import_skip.py: Skipped*no_such_module*",
                                 "*test_sandbox_here.py::test_the_sandbox_holds: Skipped*"])


def test_on_a_laptop_a_skip_is_a_skip(suite, monkeypatch):
    monkeypatch.delenv("DIFFUSION_COURSE_CI_NO_SKIPS", raising=False)
    assert suite.runpytest_inprocess("-p", "no:xdist").ret == pytest.ExitCode.OK
