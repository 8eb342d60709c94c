"""SshTransport against the real lab: OpenSSH sshd in network namespaces (tests/integration)."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.config.inventory import load_inventory
from fleet.errors import HostKeyError, TransportError
from fleet.hosts import Host, JumpHost, Secret
from fleet.lab import LabState
from fleet.transport import Transport, connect
from fleet.transport.ssh import DEFAULT_KEEPALIVE_SECONDS, SshTransport

pytestmark = pytest.mark.integration

HOSTILE = [
    "two words", "'single'", '"double"', "$(touch {canary})", "`touch {canary}`",
    "; touch {canary}", "a && b || c", "line1\nline2", "tab\there", "*", "~", "$HOME", "\\",
    "ünïcödé €", "emoji 😀", "-n", "",
]


@pytest.fixture
def host(lab: LabState) -> Host:
    """lab1 exactly as the lab's Ansible inventory describes it."""
    inventory = load_inventory([lab.inventory_path], limit=lab.hosts[0].name)
    (only,) = inventory.hosts
    return only


@pytest.fixture
def ssh(host: Host) -> Iterator[SshTransport]:
    transport = SshTransport(host)
    yield transport
    transport.close()


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def entry(host: Host) -> str:
    return host.address if host.port == 22 else f"[{host.address}]:{host.port}"


def established(host: Host) -> int:
    """TCP connections from this process to the host's sshd, as the kernel sees them."""
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", "dst", f"{host.address}", "dport", "=",
         f":{host.port}"], capture_output=True, text=True, check=True).stdout
    return sum(f"pid={os.getpid()}," in line for line in out.splitlines())


# ---- commands ---------------------------------------------------------------------------------


def test_inventory_host_and_protocol(host: Host, lab: LabState, ssh: SshTransport) -> None:
    assert (host.address, host.port) == (lab.hosts[0].address, lab.hosts[0].port)
    assert host.known_hosts_files == (str(lab.known_hosts_path),)
    assert isinstance(connect(host), SshTransport)
    assert isinstance(ssh, Transport)


def test_hostile_argv_is_echoed_back_literally(ssh: SshTransport, tmp_path: Path) -> None:
    canary = tmp_path / "canary"  # the lab shares this machine's filesystem
    args = [a.format(canary=canary) for a in HOSTILE]
    result = ssh.run(["printf", r"%s\0", *args])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split("\0")[:-1] == args
    assert not canary.exists()
    assert result.argv == ("printf", r"%s\0", *args)


def test_exit_code_and_stderr(ssh: SshTransport, host: Host) -> None:
    result = ssh.run(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (result.exit_code, result.stdout, result.stderr) == (7, "out\n", "err\n")
    assert result.host == host.name
    assert ssh.run(["/nonexistent/tool"]).exit_code == 127


def test_stdin_and_big_outputs_do_not_deadlock(ssh: SshTransport) -> None:
    assert ssh.run(["cat"], stdin="ä line\n$(x)\n").stdout == "ä line\n$(x)\n"
    assert ssh.run(["cat"]).stdout == ""  # stdin closed at once: no hang
    data = "y" * 5_000_000
    result = ssh.run(["sh", "-c", "cat; head -c 4000000 /dev/zero | tr '\\0' e >&2"],
                     stdin=data, timeout_seconds=60)
    assert (len(result.stdout), len(result.stderr)) == (5_000_000, 4_000_000)


def test_timeout_raises_naming_host_and_connection_survives(
        ssh: SshTransport, host: Host) -> None:
    started = time.monotonic()
    with pytest.raises(TransportError) as err:
        ssh.run(["sleep", "30"], timeout_seconds=0.5)
    assert time.monotonic() - started < 5
    assert str(err.value).startswith(f"{host.name}: timed out after 0.5s running sleep 30")
    assert ssh.run(["echo", "still here"]).stdout == "still here\n"
    assert ssh.connect_count == 1


def test_one_tcp_connection_for_many_runs_and_reads(ssh: SshTransport, host: Host) -> None:
    assert established(host) == 0
    for i in range(15):
        assert ssh.run(["echo", str(i)]).stdout == f"{i}\n"
        assert ssh.read_file("/etc/hostname")
    assert ssh.connect_count == 1
    assert established(host) == 1
    ssh.close()
    deadline = time.monotonic() + 5
    while established(host) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert established(host) == 0


# ---- files over SFTP --------------------------------------------------------------------------


def test_read_file_over_sftp(ssh: SshTransport, host: Host, tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes("NUMA ñodes\n".encode() + b"\xfe\n")
    assert ssh.read_file(str(path)) == "NUMA ñodes\n\ufffd\n"
    assert ssh.read_file("/proc/meminfo").startswith("MemTotal:")  # size 0 in stat
    with pytest.raises(TransportError, match=rf"^{host.name}: cannot read {tmp_path}/nope: "):
        ssh.read_file(str(tmp_path / "nope"))


def test_read_file_is_much_cheaper_than_a_command(ssh: SshTransport) -> None:
    ssh.run(["true"])
    ssh.read_file("/proc/loadavg")
    started = time.monotonic()
    for _ in range(10):
        ssh.run(["true"])
    run_seconds = (time.monotonic() - started) / 10
    started = time.monotonic()
    for _ in range(10):
        ssh.read_file("/proc/loadavg")
    read_seconds = (time.monotonic() - started) / 10
    assert read_seconds < run_seconds / 5, (read_seconds, run_seconds)


# ---- host keys --------------------------------------------------------------------------------


def test_unknown_host_key_is_refused(host: Host, tmp_path: Path,
                                     capfd: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    stranger = dataclasses.replace(host, known_hosts_files=(str(empty),))
    with pytest.raises(HostKeyError) as err, SshTransport(stranger) as ssh:
        ssh.run(["true"])
    assert str(err.value) == (
        f"{host.name}: host key for {host.address}:{host.port} is not in {empty} (verify it, "
        "then add it with ssh-keyscan or rerun with --accept-new-host-keys)")
    assert capfd.readouterr() == ("", "")


def test_accept_new_appends_the_key(host: Host, lab: LabState, tmp_path: Path) -> None:
    known = tmp_path / "new" / "known_hosts"
    first = dataclasses.replace(host, known_hosts_files=(str(known), str(lab.known_hosts_path)
                                                         + ".absent"))
    with SshTransport(first, accept_new_host_keys=True) as ssh:
        assert ssh.run(["echo", "hi"]).stdout == "hi\n"
    line = known.read_text()
    (lab_key,) = [ln.split()[1:3] for ln in lab.known_hosts_path.read_text().splitlines()
                  if ln.startswith(entry(host) + " ")]
    assert line.split() == [entry(host), *lab_key]
    assert known.stat().st_mode & 0o777 == 0o600
    with SshTransport(first) as again:  # now known: no accept_new needed
        assert again.run(["true"]).ok
    assert known.read_text() == line  # nothing appended twice


def test_inventory_strict_host_key_checking_accept_new(host: Host, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    relaxed = dataclasses.replace(host, known_hosts_files=(str(known),),
                                  accept_new_host_keys=True)
    with connect(relaxed) as ssh:
        assert ssh.run(["true"]).ok
    assert known.read_text().startswith(entry(host) + " ssh-ed25519 ")


def test_changed_key_is_refused_even_with_accept_new(host: Host, tmp_path: Path,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    other = keygen(tmp_path / "impostor")
    key_type, key_b64 = Path(f"{other}.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"{entry(host)} {key_type} {key_b64}\n")
    changed = dataclasses.replace(host, known_hosts_files=(str(known),))
    with pytest.raises(HostKeyError) as err, SshTransport(changed,
                                                          accept_new_host_keys=True) as ssh:
        ssh.run(["true"])
    message = str(err.value)
    assert message.startswith(f"{host.name}: host key for {host.address}:{host.port} has CHANGED")
    assert "man-in-the-middle" in message and "\n" not in message
    assert known.read_text() == f"{entry(host)} {key_type} {key_b64}\n"
    assert capfd.readouterr() == ("", "")


def test_hashed_known_hosts_entries_are_understood(host: Host, lab: LabState,
                                                   tmp_path: Path) -> None:
    hashed = tmp_path / "known_hosts"
    shutil.copy(lab.known_hosts_path, hashed)
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(hashed)], check=True,
                   capture_output=True)
    assert hashed.read_text().startswith("|1|")
    with SshTransport(dataclasses.replace(host, known_hosts_files=(str(hashed),))) as ssh:
        assert ssh.run(["true"]).ok


# ---- connection and auth failures ------------------------------------------------------------


def test_missing_key_file_fails_before_connecting(host: Host, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_key"
    ssh = SshTransport(dataclasses.replace(host, key_files=(str(missing),)))
    with pytest.raises(TransportError) as err:
        ssh.run(["true"])
    assert str(err.value).startswith(
        f"{host.name}: cannot read SSH key file {missing}: No such file or directory")
    assert ssh.connect_count == 0
    assert established(host) == 0


def test_closed_port_is_connection_refused(host: Host) -> None:
    closed = dataclasses.replace(host, port=1)
    with pytest.raises(TransportError) as err:
        connect(closed).run(["true"])
    assert str(err.value).startswith(
        f"{host.name}: connection refused by {host.address}:1")


def test_wrong_key_is_auth_failure_and_password_stays_secret(
        host: Host, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    wrong = keygen(tmp_path / "wrong_key")
    secret = "pw-never-shown-7731"
    bad = dataclasses.replace(host, key_files=(str(wrong),), password=Secret(secret))
    with pytest.raises(TransportError) as err:
        SshTransport(bad).run(["true"])
    message = str(err.value)
    assert message.startswith(f"{host.name}: authentication failed for user root")
    assert secret not in message and secret not in repr(bad)
    assert capfd.readouterr() == ("", "")


# ---- streams ----------------------------------------------------------------------------------


def test_open_stream_reads_lines_incrementally(ssh: SshTransport) -> None:
    script = 'echo ready; read x; echo "got $x"; read y; echo bye; echo oops >&2'
    with ssh.open_stream(["sh", "-c", script]) as stream:
        assert stream.readline(timeout_seconds=10) == "ready\n"  # before any input was sent
        assert stream.exit_code is None
        stream.write("one two\n")
        assert stream.readline(timeout_seconds=10) == "got one two\n"
        stream.close_stdin()  # `read y` sees EOF
        assert stream.readline(timeout_seconds=10) == "bye\n"
        assert stream.readline(timeout_seconds=10) == ""
        deadline = time.monotonic() + 5
        while stream.exit_code is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stream.exit_code == 0
        assert stream.stderr == "oops\n"
    assert ssh.run(["echo", "after"]).stdout == "after\n"
    assert ssh.connect_count == 1


def test_stream_readline_timeout_names_host(ssh: SshTransport, host: Host) -> None:
    with ssh.open_stream(["sleep", "30"]) as stream, pytest.raises(TransportError) as err:
        stream.readline(timeout_seconds=0.3)
    assert str(err.value).startswith(f"{host.name}: no output line within 0.3s from sleep 30")


# ---- relays: ProxyJump through one lab host to another, ProxyCommand; keepalive; @revoked ----

RELAY = ("import os,socket,sys,threading;"
         "s=socket.create_connection((sys.argv[1],int(sys.argv[2])));"
         "o=sys.stdout.buffer;"
         "threading.Thread(target=lambda:[(o.write(b),o.flush()) for b in "
         "iter(lambda:s.recv(65536),b'')],daemon=True).start();"
         "[s.sendall(b) for b in iter(lambda:os.read(0,65536),b'')]")


@pytest.fixture
def routed(lab: LabState) -> Iterator[tuple[Host, Host]]:
    """lab1 and lab2 as the inventory has them, with a route between their namespaces through
    the root namespace (forwarding on their two veths only); removed afterwards."""
    one, two = lab.hosts[0], lab.hosts[1]
    assert one.namespace and two.namespace
    (dev1, root1), (dev2, root2) = root_end(one.address), root_end(two.address)
    steps = [(["ip", "-n", one.namespace, "route", "add", f"{two.address}/32", "via", root1],
              ["ip", "-n", one.namespace, "route", "del", f"{two.address}/32"]),
             (["ip", "-n", two.namespace, "route", "add", f"{one.address}/32", "via", root2],
              ["ip", "-n", two.namespace, "route", "del", f"{one.address}/32"])]
    steps += [(["sysctl", "-qw", f"net.ipv4.conf.{dev}.forwarding=1"],
               ["sysctl", "-qw", f"net.ipv4.conf.{dev}.forwarding=0"]) for dev in (dev1, dev2)]
    done = []
    try:
        for up, down in steps:
            subprocess.run(up, check=True, capture_output=True)
            done.append(down)
        hosts = load_inventory([lab.inventory_path], limit=f"{one.name},{two.name}").hosts
        yield hosts[0], hosts[1]
    finally:
        for down in reversed(done):
            subprocess.run(down, check=False, capture_output=True)


def root_end(address: str) -> tuple[str, str]:
    """(veth, address) of the root namespace's end of the link to a lab host."""
    out = subprocess.run(["ip", "-j", "-4", "route", "get", address], capture_output=True,
                         text=True, check=True).stdout
    (route,) = json.loads(out)
    return str(route["dev"]), str(route["prefsrc"])


def client_address(ssh: SshTransport) -> str:
    """The address the target's sshd sees the connection coming from."""
    return ssh.run(["sh", "-c", "echo $SSH_CONNECTION"]).stdout.split()[0]


def test_proxy_jump_goes_through_the_jump_host(routed: tuple[Host, Host], lab: LabState) -> None:
    jump, target = routed
    with SshTransport(target) as direct:
        assert client_address(direct) == root_end(target.address)[1]
    via = dataclasses.replace(target, proxy_jump=(JumpHost(jump.address, jump.port, "root"),))
    with SshTransport(via) as ssh:
        assert client_address(ssh) == jump.address  # lab2 saw lab1 connect, not us
        assert ssh.read_file("/proc/sys/kernel/ostype") == "Linux\n"
        assert ssh.connect_count == 1
    assert established(jump) == 0 and established(target) == 0  # both hops closed


def test_two_jumps_and_a_jump_that_cannot_reach_the_target(routed: tuple[Host, Host],
                                                           lab: LabState) -> None:
    jump, target = routed
    hop = JumpHost(jump.address, jump.port, "root")
    twice = dataclasses.replace(target, proxy_jump=(hop, JumpHost(target.address, target.port)))
    with SshTransport(twice) as ssh:  # lab1 -> lab2 -> lab2's own address
        assert client_address(ssh) == target.address
    third = lab.hosts[2]  # no route from lab1 to lab3
    stuck = dataclasses.replace(target, name="lab3", address=third.address, port=third.port,
                                proxy_jump=(hop,), connect_timeout_seconds=3.0)
    with pytest.raises(TransportError) as err:
        SshTransport(stuck).run(["true"])
    assert str(err.value).startswith(
        f"lab3: jump host root@{jump.address}:{jump.port} could not connect to "
        f"{third.address}:{third.port}")
    assert established(jump) == 0


def test_proxy_command_relays_with_tokens_expanded(host: Host, tmp_path: Path) -> None:
    import sys

    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(RELAY)} %h %p"
    proxied = dataclasses.replace(host, proxy_command=command)
    with SshTransport(proxied) as ssh:
        assert ssh.run(["echo", "relayed"]).stdout == "relayed\n"
        assert client_address(ssh) == root_end(host.address)[1]
    broken = dataclasses.replace(host, proxy_command="exit 3", connect_timeout_seconds=3.0)
    with pytest.raises(TransportError) as err:
        SshTransport(broken).run(["true"])
    assert str(err.value).startswith(f"{host.name}: ")
    assert "\n" not in str(err.value)


def test_keepalive_is_on(host: Host, ssh: SshTransport) -> None:
    ssh.run(["true"])
    conn = ssh._conn  # the transport's only connection
    assert conn is not None
    live = conn.client.get_transport()
    assert live is not None
    assert live.packetizer._Packetizer__keepalive_interval == DEFAULT_KEEPALIVE_SECONDS  # type: ignore[attr-defined]
    with SshTransport(dataclasses.replace(host, keepalive_interval_seconds=3.0)) as other:
        other.run(["true"])
        assert other._conn is not None
        other_live = other._conn.client.get_transport()
        assert other_live is not None
        assert other_live.packetizer._Packetizer__keepalive_interval == 3  # type: ignore[attr-defined]


def test_a_revoked_host_key_is_refused(host: Host, lab: LabState, tmp_path: Path) -> None:
    key_type, key_b64 = next(ln.split()[1:3] for ln in
                             lab.known_hosts_path.read_text().splitlines()
                             if ln.startswith(entry(host) + " "))
    known = tmp_path / "ssh_known_hosts"
    shutil.copy(lab.known_hosts_path, known)
    with known.open("a") as f:
        f.write(f"@cert-authority *.example.com {key_type} {key_b64}\n")
    with SshTransport(dataclasses.replace(host, known_hosts_files=(str(known),))) as ssh:
        assert ssh.run(["true"]).ok  # such lines no longer break every host
    with known.open("a") as f:
        f.write(f"@revoked * {key_type} {key_b64}\n")
    with pytest.raises(HostKeyError) as err, SshTransport(
            dataclasses.replace(host, known_hosts_files=(str(known),)),
            accept_new_host_keys=True) as ssh:
        ssh.run(["true"])
    assert str(err.value).startswith(f"{host.name}: host key for {host.address}:{host.port} (")
    assert "is marked @revoked in" in str(err.value)
