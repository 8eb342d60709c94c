"""The transport interface: run a command on a host, read a file. Implementations: ssh, local."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, runtime_checkable

from fleet.hosts import Become

PRIVATE_KEY_MARKERS = (b"-----BEGIN OPENSSH PRIVATE KEY-----", b"-----BEGIN RSA PRIVATE KEY-----",
                       b"-----BEGIN EC PRIVATE KEY-----", b"-----BEGIN DSA PRIVATE KEY-----",
                       b"-----BEGIN PRIVATE KEY-----", b"-----BEGIN ENCRYPTED PRIVATE KEY-----")


def not_a_private_key(path: str, head: bytes) -> str | None:
    """Pure: why the first bytes of a key file are not an SSH private key, or None if they are."""
    if any(marker in head for marker in PRIVATE_KEY_MARKERS):
        return None
    public = head.startswith((b"ssh-", b"ecdsa-", b"sk-"))
    return f"SSH key file {path} is not a private key{' (it is a public key)' if public else ''}"


def with_become(argv: Sequence[str], become: Become | None) -> tuple[str, ...]:
    """argv as ``become.user`` through sudo (no shell; ``-S`` reads a password from stdin,
    ``-n`` fails at once when sudo would ask for one; ``-p ''``: no prompt in the output)."""
    if become is None:
        return tuple(argv)
    mode = "-S" if become.password is not None else "-n"
    return ("sudo", mode, "-p", "", "-u", become.user, "--", *argv)


def become_input(become: Become | None) -> str:
    """What goes to the command's stdin before anything else: sudo's password line, or ''."""
    if become is None or become.password is None:
        return ""
    return become.password.reveal() + "\n"


BECOME_HINT = ("check ansible_become_password, or let the user run commands as root "
               "without a password in sudoers (NOPASSWD), or connect as root")
BECOME_FAILURES = ("incorrect password", "a password is required", "is not in the sudoers",
                   "not allowed to execute", "may not run sudo", "sudo: unknown user",
                   "sudo: not found", "sudo: command not found")


def become_failure(stderr: str) -> str | None:
    """sudo's own refusal in ``stderr`` (one line), or None when sudo was not the problem."""
    for line in stderr.splitlines():
        if any(marker in line for marker in BECOME_FAILURES):
            return line.strip()
    return None


KEY_FILE_HINT = ("point ansible_ssh_private_key_file (or IdentityFile) at the private key, the "
                 "file without .pub, e.g. ~/.ssh/id_ed25519")


@dataclass(frozen=True)
class Result:
    """What one command did."""

    host: str
    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    duration_seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@runtime_checkable
class Transport(Protocol):
    """One persistent connection to one host.

    ``run`` takes an argv list; it is quoted with shlex for the remote shell, never
    concatenated from user values. ``stdin`` is sent to the command, then closed.
    A command that exits non-zero is a Result, not an exception; failures to connect,
    authenticate or time out raise TransportError naming the host.
    """

    host_name: str

    def run(self, argv: Sequence[str], *, stdin: str | None = None,
            timeout_seconds: float = 60.0) -> Result: ...

    def read_file(self, path: str) -> str: ...

    def close(self) -> None: ...

    def __enter__(self) -> Transport: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


@runtime_checkable
class Stream(Protocol):
    """A long-lived command: stdout read line by line, stdin writable, stderr kept.

    ``readline`` returns the next line with its newline, the last partial line at EOF, then
    ''; it raises TransportError when no full line came within ``timeout_seconds``.
    ``exit_code`` is None while the command runs, -1 if a signal ended it.
    """

    host_name: str
    argv: tuple[str, ...]

    def readline(self, timeout_seconds: float | None = None) -> str: ...

    def write(self, text: str) -> None: ...

    def close_stdin(self) -> None: ...

    @property
    def stderr(self) -> str: ...

    @property
    def exit_code(self) -> int | None: ...

    def close(self) -> None: ...


@runtime_checkable
class StreamTransport(Protocol):
    """A transport that can also start long-lived commands (SshTransport, LocalTransport)."""

    host_name: str

    def open_stream(self, argv: Sequence[str]) -> Stream: ...
