"""The readiness probe tells a silent connection (a guest sshd still re-executing itself, or
QEMU's slirp still connecting to a booting guest) from a refused or closed one: only the
silent one is worth waiting on longer."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from fleet.errors import LabError
from fleet.lab import sshd
from fleet.lab.vm import ready as vm_ready
from fleet.lab.vm.state import GuestRecord


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


def _guest(tmp_path: Path, name: str, port: int) -> GuestRecord:
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    return GuestRecord(name=name, spec="2n", port=port, guest_dir=str(d),
                       overlay_path=str(d / "disk.qcow2"), seed_path=str(d / "seed.tar"),
                       host_key_path=str(d / "key"), qmp_path=str(d / "qmp.sock"),
                       console_log_path=str(d / "console.log"), pid_file=str(d / "qemu.pid"),
                       qemu_pid=1)


def test_a_guest_stuck_at_its_login_prompt_is_started_again_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Booted (the console shows the prompt) but nothing listens on port 22: after the grace
    period the guest is restarted once, said with the console's failure; the new one answers."""
    monkeypatch.setattr(vm_ready, "STUCK_AFTER_PROMPT_SECONDS", 0.3)
    monkeypatch.setattr(vm_ready, "fail_if_dead", lambda guest: None)  # no real QEMU here
    monkeypatch.setattr(vm_ready, "_boot_state", lambda *args: "running")
    with socket.create_server(("127.0.0.1", 0)) as closed_port:
        port = closed_port.getsockname()[1]
    stuck = _guest(tmp_path, "vm1-2n", port)  # refused: "closed"
    Path(stuck.console_log_path).write_bytes(
        b"[FAILED] Failed to start ssh.service - OpenBSD Secure Shell server.\r\n"
        b"\r\nDebian GNU/Linux 12 vm1-2n ttyS0\r\n\r\nvm1-2n login: ")
    said: list[str] = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        thread = _serve_once(server, b"SSH-2.0-OpenSSH_9.2p1\r\n")
        restarted = replace(stuck, port=server.getsockname()[1], qemu_pid=2)
        calls: list[GuestRecord] = []

        def restart(guest: GuestRecord) -> GuestRecord:
            calls.append(guest)
            return restarted

        final = vm_ready.wait_ready((stuck,), client_key=tmp_path / "k",
                                    known_hosts=tmp_path / "kh", started_at=time.monotonic(),
                                    timeout_seconds=30, say=said.append, restart=restart)
        thread.join(5)
    assert calls == [stuck]
    assert final == (restarted,)
    assert said[0].startswith("vm1-2n: no SSH banner 0.3 s after its login prompt (the last "
                              "probe was closed at once: the guest is reachable but nothing "
                              "listens on its port 22; console: [FAILED] Failed to start "
                              "ssh.service")
    assert said[0].endswith("vm1-2n login:); starting it again, once")
    assert said[1].startswith("vm1-2n: SSH banner after ")


def test_a_guest_without_a_banner_is_named_with_the_last_probe(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vm_ready, "fail_if_dead", lambda guest: None)
    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts, never speaks: "silent"
        guest = _guest(tmp_path, "vm2-4n", server.getsockname()[1])
        with pytest.raises(LabError) as caught:
            vm_ready.wait_ready((guest,), client_key=tmp_path / "k", known_hosts=tmp_path / "kh",
                                started_at=time.monotonic(), timeout_seconds=0.5,
                                say=lambda line: None)
    assert caught.value.what.startswith(
        f"no SSH banner on 127.0.0.1:{guest.port} (the last probe got no answer: the guest's "
        "network may not be up; 1 of 1 guest(s) without one) within 0.5 s")
