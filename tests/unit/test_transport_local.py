"""LocalTransport runs real subprocesses: argv is passed through literally, never via a shell."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fleet.errors import TransportError
from fleet.hosts import Host
from fleet.transport import Result, Transport, connect
from fleet.transport.local import SESSION_PATH, LocalTransport, session_environment

HOSTILE = [
    "two words", "'single'", '"double"', "$(touch {canary})", "`touch {canary}`",
    "; touch {canary}", "a && b || c", "line1\nline2", "tab\there", "*", "~", "$HOME", "\\",
    "ünïcödé €", "emoji 😀", "-n", "",
]


@pytest.fixture
def local() -> LocalTransport:
    return LocalTransport(Host(name="me", address="localhost", connection="local"))


def test_connect_picks_local_and_satisfies_the_protocol() -> None:
    transport = connect(Host(name="me", address="localhost", connection="local"))
    assert isinstance(transport, LocalTransport)
    assert isinstance(transport, Transport)
    assert transport.host_name == "me"


def test_hostile_argv_passes_through_literally(local: LocalTransport, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    args = [a.format(canary=canary) for a in HOSTILE]
    result = local.run(["printf", r"%s\0", *args])
    assert result.ok
    assert result.stdout.split("\0")[:-1] == args
    assert not canary.exists()
    assert result.argv == ("printf", r"%s\0", *args)
    assert result.host == "me"


def test_exit_code_and_stderr_are_a_result(local: LocalTransport) -> None:
    result = local.run(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert isinstance(result, Result)
    assert (result.exit_code, result.stdout, result.stderr) == (7, "out\n", "err\n")
    assert not result.ok
    assert 0 < result.duration_seconds < 5


def test_missing_program_is_exit_127_like_a_shell(local: LocalTransport) -> None:
    result = local.run(["/nonexistent/fleet-no-such-tool", "x"])
    assert result.exit_code == 127
    assert "command not found" in result.stderr


def test_stdin_is_sent_then_closed(local: LocalTransport) -> None:
    text = "line one\nüñí\n$(not run)\n"
    assert local.run(["cat"], stdin=text).stdout == text
    assert local.run(["cat"]).stdout == ""  # no stdin: EOF at once, no hang


def test_big_stdout_and_stderr_do_not_deadlock(local: LocalTransport) -> None:
    data = "x" * 3_000_000
    result = local.run(["sh", "-c", "cat; head -c 2000000 /dev/zero | tr '\\0' e >&2"],
                       stdin=data, timeout_seconds=30)
    assert len(result.stdout) == 3_000_000
    assert len(result.stderr) == 2_000_000


def test_invalid_utf8_is_replaced_not_fatal(local: LocalTransport) -> None:
    result = local.run(["printf", r"ok\377\n"])
    assert result.stdout == "ok\ufffd\n"


def test_timeout_raises_naming_host_and_kills_the_process_group(
        local: LocalTransport, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(TransportError) as err:
        local.run(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"], timeout_seconds=0.5)
    assert time.monotonic() - started < 5
    message = str(err.value)
    assert message.startswith("me: timed out after 0.5s running sh -c ")
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(child), "the backgrounded sleep outlived the timeout"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone, or vanishing while read
        return False


def test_read_file(local: LocalTransport, tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes("a\nü\n".encode() + b"\xff")
    assert local.read_file(str(path)) == "a\nü\n\ufffd"
    assert local.read_file("/proc/self/status").startswith("Name:")


def test_read_missing_file_raises_naming_host(local: LocalTransport, tmp_path: Path) -> None:
    with pytest.raises(TransportError, match=r"^me: cannot read .*/nope: No such file"):
        local.read_file(str(tmp_path / "nope"))


def test_context_manager(tmp_path: Path) -> None:
    with connect(Host(name="me", address="localhost", connection="local")) as transport:
        assert transport.run(["pwd"]).stdout.strip() == os.getcwd()


# ---- environment: what an SSH login would give, not the controller's ------------------------


def test_session_environment_keeps_only_a_logins_variables() -> None:
    controller = {"HOME": "/home/u", "USER": "u", "SHELL": "/bin/bash", "PATH": "/opt/x:/usr/bin",
                  "LANG": "C.UTF-8", "LC_TIME": "en_GB.UTF-8", "TERM": "xterm-256color",
                  "FLEET_GRAFANA_TOKEN": "glsa_x", "AWS_SECRET_ACCESS_KEY": "k",
                  "SSH_AUTH_SOCK": "/tmp/agent", "PYTHONPATH": "/src"}
    assert session_environment(controller) == {
        "HOME": "/home/u", "USER": "u", "LOGNAME": "u", "SHELL": "/bin/bash",
        "PATH": "/opt/x:/usr/bin", "LANG": "C.UTF-8", "LC_TIME": "en_GB.UTF-8"}
    assert session_environment({})["PATH"] == SESSION_PATH


def test_a_controller_secret_never_reaches_a_workload(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the real agent on a local session, as a workload runs; and through run()."""
    from fleet.agent import AgentSession

    monkeypatch.setenv("FLEET_GRAFANA_TOKEN", "glsa_do-not-leak")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-do-not-leak")
    transport = LocalTransport(Host(name="me", address="localhost", connection="local"))
    with AgentSession(transport, host_name="me") as session:
        outcome = session.run(["env"], timeout_seconds=10)
    direct = transport.run(["env"])
    for text in (outcome.stdout, direct.stdout):
        assert "do-not-leak" not in text
        assert f"HOME={os.environ['HOME']}\n" in text
        assert "\nPATH=" in text or text.startswith("PATH=")
