"""The readiness probe tells a silent connection (a guest sshd still re-executing itself, or
QEMU's slirp still connecting to a booting guest) from a refused or closed one: only the
silent one is worth waiting on longer."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from fleet.lab import sshd


@pytest.fixture()
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


def _serve_once(server: socket.socket, payload: bytes | None) -> threading.Thread:
    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            if payload is not None:
                conn.sendall(payload)
                with contextlib.suppress(OSError):
                    conn.recv(1)  # hold until the client closes (or resets)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_a_banner_is_ok(listener: socket.socket) -> None:
    thread = _serve_once(listener, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
    assert sshd.banner_ok("127.0.0.1", listener.getsockname()[1], 5)
    thread.join(5)


def test_a_connection_that_says_nothing_is_silent(listener: socket.socket) -> None:
    # the listen backlog accepts it; nothing is ever sent
    assert sshd.banner("127.0.0.1", listener.getsockname()[1], 0.2) == "silent"


def test_a_connection_closed_without_a_banner_is_closed(listener: socket.socket) -> None:
    thread = _serve_once(listener, None)
    assert sshd.banner("127.0.0.1", listener.getsockname()[1], 5) == "closed"
    thread.join(5)


def test_a_refused_port_is_closed() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    assert sshd.banner("127.0.0.1", port, 5) == "closed"


def test_something_else_than_ssh_is_closed(listener: socket.socket) -> None:
    thread = _serve_once(listener, b"HTTP/1.1 400 Bad Request\r\n")
    assert sshd.banner("127.0.0.1", listener.getsockname()[1], 5) == "closed"
    thread.join(5)
