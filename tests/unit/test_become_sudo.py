"""sudo's argv and stdin for ansible_become, and sudo's refusals found in its stderr."""

from __future__ import annotations

from fleet.hosts import Become, Secret
from fleet.transport.base import become_failure, become_input, with_become


def test_no_become_leaves_argv_alone() -> None:
    assert with_become(["id", "-u"], None) == ("id", "-u")
    assert become_input(None) == ""


def test_passwordless_become_never_waits_for_a_prompt() -> None:
    assert with_become(["id"], Become()) == ("sudo", "-n", "-p", "", "-u", "root", "--", "id")
    assert become_input(Become()) == ""


def test_password_goes_to_stdin_not_argv() -> None:
    become = Become(user="admin", password=Secret("pa ss;rm"))
    argv = with_become(["sh", "-c", "x"], become)
    assert argv == ("sudo", "-S", "-p", "", "-u", "admin", "--", "sh", "-c", "x")
    assert "pa ss;rm" not in " ".join(argv)
    assert become_input(become) == "pa ss;rm\n"


def test_sudo_refusals_are_found_in_stderr() -> None:
    # sudo 1.9.13 (Debian 12) as printed on a refused start
    assert become_failure("Sorry, try again.\nsudo: 3 incorrect password attempts\n") == \
        "sudo: 3 incorrect password attempts"
    assert become_failure("sudo: a password is required\n") == "sudo: a password is required"
    assert become_failure("bob is not in the sudoers file.\n") == "bob is not in the sudoers file."
    assert become_failure("python3: not found\n") is None
