"""Grading refuses a machine whose system calls the sandbox's seccomp filter does not describe
(it knows x86-64's numbers only), and says what to do; no sandbox is needed to test it."""

import platform

import pytest

from autograder import sandbox
from autograder.sandbox import seccomp
from autograder.sandbox.__main__ import check


@pytest.mark.parametrize("machine", ["aarch64", "arm64", "riscv64", "i686"])
def test_a_machine_other_than_x86_64_is_refused_with_its_name(monkeypatch, capsys, machine):
    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.delenv(sandbox.MODE_VARIABLE, raising=False)
    assert not seccomp.supported()
    with pytest.raises(sandbox.SandboxUnavailableError) as error:
        sandbox.check_available()
    message = str(error.value)
    assert f"this machine is {machine}" in message and "x86-64" in message
    assert "AUTOGRADER_SANDBOX=off grades with no protection at all" in message
    assert check() == 1  # python -m autograder.sandbox check
    assert f"this machine is {machine}" in capsys.readouterr().out


def test_x86_64_has_the_filter(monkeypatch):
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert seccomp.supported() and seccomp.program()
