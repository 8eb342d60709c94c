"""The lab's one command runner (fleet/lab/command.py), as the QEMU start uses it."""

from __future__ import annotations

import pytest

from fleet.errors import LabError
from fleet.lab.command import run

QEMU_LIKE = ("sh", "-c", "echo 'qemu: warning: host lacks x' >&2; "
             "echo 'qemu: -numa node,nodeid=1: bad' >&2; exit 1")


def test_a_named_command_that_fails_says_what_it_was_doing_without_warnings() -> None:
    with pytest.raises(LabError) as info:
        run(QEMU_LIKE, where="vm1", hint="check it", what="QEMU", doing="starting",
            skip_marker="warning:")
    assert str(info.value).startswith("vm1: QEMU exited 1 while starting: ")
    assert "qemu: -numa node,nodeid=1: bad" in str(info.value)
    assert "warning" not in str(info.value) and "\n" not in str(info.value)


def test_only_warnings_are_kept_when_there_is_nothing_else() -> None:
    with pytest.raises(LabError, match=r"QEMU exited 2 while starting: qemu: warning: w"):
        run(("sh", "-c", "echo 'qemu: warning: w' >&2; exit 2"), what="QEMU", doing="starting",
            skip_marker="warning:")


def test_the_default_names_the_command_line() -> None:
    with pytest.raises(LabError, match=r"`sh -c exit 3` exited 3: no output"):
        run(("sh", "-c", "exit 3"))


def test_timeout_and_missing_binary_are_one_line() -> None:
    with pytest.raises(LabError, match=r"QEMU did not finish starting within 0.2 s"):
        run(("sleep", "5"), timeout_seconds=0.2, what="QEMU", doing="starting")
    with pytest.raises(LabError) as info:
        run(("fleet-no-such-binary",), where="vm1", hint="h", missing_hint="install it")
    assert "fleet-no-such-binary not found" in str(info.value)
    assert "install it" in str(info.value)
