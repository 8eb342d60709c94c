"""LocalTransport.open_stream: the same semantics as SshStream, over subprocess pipes."""

from __future__ import annotations

import time

import pytest

from fleet.errors import TransportError
from fleet.hosts import Host
from fleet.transport.base import Stream, StreamTransport
from fleet.transport.local import LocalStream, LocalTransport


@pytest.fixture
def local() -> LocalTransport:
    return LocalTransport(Host(name="me", address="localhost", connection="local"))


def wait_exit(stream: LocalStream) -> int | None:
    deadline = time.monotonic() + 5
    while stream.exit_code is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return stream.exit_code


def test_protocols(local: LocalTransport) -> None:
    assert isinstance(local, StreamTransport)
    with local.open_stream(["true"]) as stream:
        assert isinstance(stream, Stream)


def test_open_stream_reads_lines_incrementally(local: LocalTransport) -> None:
    script = 'echo ready; read x; echo "got $x"; read y; echo bye; echo oops >&2'
    with local.open_stream(["sh", "-c", script]) as stream:
        assert stream.readline(timeout_seconds=10) == "ready\n"  # before any input was sent
        assert stream.exit_code is None
        stream.write("one two ü\n")
        assert stream.readline(timeout_seconds=10) == "got one two ü\n"
        stream.close_stdin()  # `read y` sees EOF
        assert stream.readline(timeout_seconds=10) == "bye\n"
        assert stream.readline(timeout_seconds=10) == ""
        assert wait_exit(stream) == 0
        assert stream.stderr == "oops\n"


def test_partial_last_line_then_empty(local: LocalTransport) -> None:
    with local.open_stream(["printf", "a\nb"]) as stream:
        assert [stream.readline(5), stream.readline(5), stream.readline(5)] == ["a\n", "b", ""]


def test_readline_timeout_names_host(local: LocalTransport) -> None:
    with local.open_stream(["sleep", "30"]) as stream, pytest.raises(TransportError) as err:
        stream.readline(timeout_seconds=0.2)
    assert str(err.value).startswith("me: no output line within 0.2s from sleep 30")


def test_exit_code_and_signal(local: LocalTransport) -> None:
    with local.open_stream(["sh", "-c", "exit 3"]) as stream:
        assert stream.readline(5) == ""
        assert wait_exit(stream) == 3
    with local.open_stream(["sh", "-c", "kill -9 $$"]) as stream:
        assert stream.readline(5) == ""
        assert wait_exit(stream) == -1  # like SSH: ended by a signal, no status


def test_missing_program_is_a_stream_that_ended_with_127(local: LocalTransport) -> None:
    with local.open_stream(["/nonexistent/fleet-tool", "x"]) as stream:
        assert stream.readline(5) == ""
        assert stream.exit_code == 127
        assert stream.stderr == "/nonexistent/fleet-tool: command not found\n"
        with pytest.raises(TransportError, match=r"^me: cannot write to /nonexistent/"):
            stream.write("x")


def test_write_after_exit_raises_naming_host(local: LocalTransport) -> None:
    with local.open_stream(["true"]) as stream:
        assert stream.readline(5) == ""
        assert wait_exit(stream) == 0
        with pytest.raises(TransportError, match=r"^me: cannot write to true: .*the command "
                                                 r"has ended"):
            stream.write("x" * 1_000_000)


def test_big_stderr_does_not_block_stdout(local: LocalTransport) -> None:
    script = "head -c 3000000 /dev/zero >&2; echo done"
    with local.open_stream(["sh", "-c", script]) as stream:
        assert stream.readline(timeout_seconds=20) == "done\n"
        assert len(stream.stderr) == 3_000_000
