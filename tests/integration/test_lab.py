"""The lab against the real thing: ip netns, veth, OpenSSH sshd and client, Ansible."""

from __future__ import annotations

import ipaddress
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from fleet.errors import LabError
from fleet.lab import LabState, default_state_dir, lab_down, lab_status, lab_up, netns, sshd
from fleet.lab import lab as lab_module
from fleet.lab.state import read_record, write_record

pytestmark = pytest.mark.integration

ANSIBLE = Path(sys.executable).with_name("ansible")


def fresh_id() -> str:
    return "t" + secrets.token_hex(3)


def ssh(state: LabState, address: str, command: str, *,
        known_hosts: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={known_hosts or state.known_hosts_path}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
            "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=5",
            "-i", str(state.client_key_path), f"root@{address}", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def background_session(state: LabState, address: str,
                       marker: str) -> subprocess.Popen[str]:
    """A long-running remote command (its argv carries ``marker``), started and confirmed."""
    argv = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={state.known_hosts_path}",
            "-o", "StrictHostKeyChecking=yes", "-i", str(state.client_key_path),
            f"root@{address}",
            f"echo started; exec python3 -c 'import time; time.sleep(300)' {marker}"]
    session = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    assert session.stdout is not None
    assert session.stdout.readline() == "started\n"
    return session


def leftovers(lab_id: str, state_dir: Path) -> list[str]:
    """Anything of lab ``lab_id`` still on this machine: namespaces, links, processes, files."""
    found = [f"netns {line}" for line in _ip("netns", "list") if f"fleet-{lab_id}-" in line]
    found += [f"link {line}" for line in _ip("-o", "link") if f"fl-{lab_id}-" in line]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if str(state_dir) in cmdline or f"fleet-marker-{lab_id}" in cmdline:
                found.append(f"process {proc.name}: {cmdline}")
    if state_dir.exists():
        found += [f"file {p}" for p in state_dir.rglob("*")]
    return found


def _ip(*args: str) -> list[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


# --- the shared 3-host lab -------------------------------------------------------------------


def test_each_host_is_reachable_with_openssh_inside_its_namespace(lab: LabState) -> None:
    assert [h.name for h in lab.hosts] == ["lab1", "lab2", "lab3"]
    for host in lab.hosts:
        done = ssh(lab, host.address, "true")
        assert done.returncode == 0, done.stderr
        # the command really runs in the host's namespace: its only non-lo address is ours
        done = ssh(lab, host.address, "ip -o -4 addr show dev eth0")
        assert f"inet {host.address}/30" in done.stdout, done.stdout + done.stderr
    subnets = {ipaddress.IPv4Network(f"{h.address}/24", strict=False) for h in lab.hosts}
    assert len(subnets) == 1
    assert subnets.pop().subnet_of(ipaddress.IPv4Network("198.18.0.0/15"))


def test_a_wrong_known_hosts_is_refused(lab: LabState, tmp_path: Path) -> None:
    first, second = lab.hosts[0], lab.hosts[1]
    lines = lab.known_hosts_path.read_text().splitlines()
    second_key = next(line.split(" ", 1)[1] for line in lines
                      if line.startswith(f"{second.address} "))
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"{first.address} {second_key}\n")
    done = ssh(lab, first.address, "true", known_hosts=wrong)
    assert done.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in done.stderr
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    done = ssh(lab, first.address, "true", known_hosts=empty)
    assert done.returncode == 255
    assert "Host key verification failed" in done.stderr


def test_known_hosts_and_inventory_describe_the_hosts(lab: LabState) -> None:
    lines = lab.known_hosts_path.read_text().splitlines()
    assert [line.split()[0] for line in lines] == [h.address for h in lab.hosts]
    for line, host in zip(lines, lab.hosts, strict=True):
        pub = lab.state_dir / "hosts" / host.name / "ssh_host_ed25519_key.pub"
        assert line.split()[1:] == pub.read_text().split()[:2]
    assert lab.client_key_path.stat().st_mode & 0o777 == 0o600
    inventory = yaml.safe_load(lab.inventory_path.read_text())
    hosts = inventory["all"]["children"]["lab"]["hosts"]
    assert sorted(hosts) == ["lab1", "lab2", "lab3"]
    for host in lab.hosts:
        v = hosts[host.name]
        assert v["ansible_host"] == host.address
        assert v["ansible_port"] == 22
        assert v["ansible_user"] == "root"
        assert v["ansible_ssh_private_key_file"] == str(lab.client_key_path)
        assert v["ansible_python_interpreter"] == "/usr/bin/python3"
        assert v["fleet_lab_namespace"] == host.namespace
        assert v["fleet_lab_kind"] == "netns"  # fleet provision refuses persistent changes
        assert f"UserKnownHostsFile={lab.known_hosts_path}" in v["ansible_ssh_common_args"]
        assert "StrictHostKeyChecking=yes" in v["ansible_ssh_common_args"]


def test_status_reports_every_host_healthy(lab: LabState) -> None:
    status = lab_status(lab.state_dir)
    assert status.lab_id == lab.lab_id
    assert status.healthy
    assert [(h.name, h.sshd_pid, h.namespace_exists, h.sshd_alive, h.port_open)
            for h in status.hosts] == [(h.name, h.sshd_pid, True, True, True) for h in lab.hosts]


def test_ansible_pings_every_host(lab: LabState, tmp_path: Path) -> None:
    env = {**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "True", "HOME": str(tmp_path),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"), "ANSIBLE_NOCOLOR": "1"}
    env.pop("ANSIBLE_CONFIG", None)
    done = subprocess.run([str(ANSIBLE), "-i", str(lab.inventory_path), "lab", "-m", "ping"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    for host in lab.hosts:
        assert f"{host.name} | SUCCESS" in done.stdout
    assert done.stdout.count('"ping": "pong"') == 3


# --- labs of their own -------------------------------------------------------------------------


def test_up_is_idempotent_and_down_leaves_nothing(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    lab_id = fresh_id()
    started = time.monotonic()
    state = lab_up(3, state_dir, lab_id=lab_id)
    up_seconds = time.monotonic() - started
    assert state.lab_id == lab_id
    assert lab_up(3, state_dir) == state  # healthy, same size: the same lab, same PIDs
    with pytest.raises(LabError, match="already up"):
        lab_up(2, state_dir)
    session = background_session(state, state.hosts[2].address, f"fleet-marker-{lab_id}")
    started = time.monotonic()
    removed = lab_down(state_dir)
    down_seconds = time.monotonic() - started
    assert session.wait(timeout=10) == 255  # the connection died with its host
    assert f"stopped sshd pid {state.hosts[0].sshd_pid} (lab1)" in removed
    assert f"deleted namespace fleet-{lab_id}-lab3" in removed
    assert leftovers(lab_id, state_dir) == []
    assert not state_dir.exists()
    assert lab_down(state_dir) == ()
    assert up_seconds + down_seconds < 10, (up_seconds, down_seconds)


def test_a_killed_sshd_is_reported_and_up_rebuilds_the_lab(tmp_path: Path) -> None:
    state = lab_up(2, tmp_path, lab_id=fresh_id())
    try:
        victim = state.hosts[0].sshd_pid
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while sshd.is_lab_sshd(victim, str(tmp_path / "hosts/lab1/sshd_config")):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        status = lab_status(tmp_path)
        assert not status.healthy
        first, second = status.hosts
        assert (first.namespace_exists, first.sshd_alive, first.port_open) == (True, False, False)
        assert second.healthy
        rebuilt = lab_up(2, tmp_path, lab_id=state.lab_id)
        assert lab_status(tmp_path).healthy
        assert victim not in {h.sshd_pid for h in rebuilt.hosts}
        assert ssh(rebuilt, rebuilt.hosts[0].address, "true").returncode == 0
    finally:
        lab_down(tmp_path)
    assert leftovers(state.lab_id, tmp_path) == []


def test_up_after_an_interrupted_up_cleans_up_first(tmp_path: Path) -> None:
    state = lab_up(1, tmp_path, lab_id=fresh_id())
    try:
        record = read_record(tmp_path)
        assert record is not None
        write_record(tmp_path, replace(record, complete=False))  # as if up died before the end
        assert not lab_status(tmp_path).healthy
        again = lab_up(1, tmp_path, lab_id=state.lab_id)
        old_pid = state.hosts[0].sshd_pid
        assert old_pid is not None and again.hosts[0].sshd_pid != old_pid
        assert not Path(f"/proc/{old_pid}/cmdline").exists() or \
            not sshd.is_lab_sshd(old_pid, str(tmp_path / "hosts/lab1/sshd_config"))
        assert lab_status(tmp_path).healthy
    finally:
        lab_down(tmp_path)
    assert leftovers(state.lab_id, tmp_path) == []


def _break_lab3(replacement: str) -> lab_module.ConfigHook:
    def hook(name: str, config: str) -> str:
        if name != "lab3":
            return config
        lines = [replacement if line.startswith("ListenAddress") else line
                 for line in config.splitlines()]
        return "\n".join(lines) + "\n"
    return hook


@pytest.mark.parametrize(("replacement", "message", "timeout"), [
    ("NoSuchOption yes", "Bad configuration option", 20.0),  # sshd -t refuses it
    ("ListenAddress 198.51.100.1", "Cannot bind any address", 20.0),  # sshd starts and dies
    ("ListenAddress 127.0.0.1", "gave no SSH banner", 1.0),  # alive but unreachable
])
def test_a_failing_sshd_raises_and_leaves_nothing(tmp_path: Path, replacement: str,
                                                  message: str, timeout: float) -> None:
    lab_id = fresh_id()
    started = time.monotonic()
    with pytest.raises(LabError) as caught:
        lab_up(3, tmp_path / "state", lab_id=lab_id, ready_timeout_seconds=timeout,
               sshd_config_hook=_break_lab3(replacement))
    assert time.monotonic() - started < 10  # a dead sshd fails fast, not at the deadline
    line = str(caught.value)
    assert "\n" not in line
    assert line.startswith("lab3")
    assert message in line
    if "banner" in message:
        assert str(tmp_path / "state/hosts/lab3/sshd.log") in line
    assert leftovers(lab_id, tmp_path / "state") == []
    assert not (tmp_path / "state").exists()


# --- refusals ------------------------------------------------------------------------------------


def test_refuses_when_not_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match=r"must run as root \(euid is 1000\)"):
        lab_up(1, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_refuses_without_sshd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sshd, "SSHD", tmp_path / "no-sshd")
    with pytest.raises(LabError, match="apt-get install openssh-server"):
        lab_up(1, tmp_path / "state")
    assert not (tmp_path / "state").exists()


def test_refuses_when_ip_netns_cannot_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns, "IP", str(tmp_path / "no-ip"))
    with pytest.raises(LabError, match=r"ip netns:.*not found"):
        lab_up(1, tmp_path / "state")
    assert not (tmp_path / "state").exists()


# --- pure pieces --------------------------------------------------------------------------------


def test_pick_subnet_skips_every_used_prefix() -> None:
    used = [ipaddress.IPv4Network(n) for n in
            ("0.0.0.0/1", "198.18.5.0/24", "198.18.6.8/30", "198.18.7.9/32", "192.0.2.0/24")]
    assert str(netns.pick_subnet(used, 5)) == "198.18.8.0/24"
    assert str(netns.pick_subnet(used, 511)) == "198.19.255.0/24"
    with pytest.raises(LabError, match="no free /24"):
        netns.pick_subnet([ipaddress.IPv4Network("198.18.0.0/15")], 0)


def test_parse_used_networks_reads_routes_and_addresses() -> None:
    routes = [{"dst": "default", "gateway": "192.0.2.1"}, {"dst": "192.0.2.0/24"},
              {"type": "local", "dst": "127.0.0.1"}]
    addrs = [{"addr_info": [{"family": "inet", "local": "198.18.3.1", "prefixlen": 30}]}]
    assert [str(n) for n in netns.parse_used_networks(routes, addrs)] == [
        "192.0.2.0/24", "127.0.0.1/32", "198.18.3.0/30"]


def test_host_links_are_point_to_point_30s() -> None:
    subnet = ipaddress.IPv4Network("198.18.9.0/24")
    assert netns.host_link(subnet, 0) == ("198.18.9.1", "198.18.9.2")
    assert netns.host_link(subnet, 63) == ("198.18.9.253", "198.18.9.254")
    with pytest.raises(LabError):
        netns.host_link(subnet, 64)


def test_default_state_dir_follows_xdg() -> None:
    assert default_state_dir({"XDG_STATE_HOME": "/srv/state"}) == Path("/srv/state/fleet/lab")
    assert default_state_dir({}) == Path.home() / ".local/state/fleet/lab"
    assert default_state_dir({"XDG_STATE_HOME": "relative"}) == \
        Path.home() / ".local/state/fleet/lab"


def test_locked_root_account_is_detected() -> None:
    from fleet.lab.sshd import root_account_locked

    assert root_account_locked("daemon:*:1::\nroot:!:19000:0:99999:7:::\n")
    assert root_account_locked("root:!$6$abc:19000::::::\n")
    assert not root_account_locked("root:*:19000:0:99999:7:::\n")
    assert not root_account_locked("root:$6$salt$hash:19000::::::\n")


def test_down_removes_the_host_lock_files_of_its_hosts(tmp_path: Path) -> None:
    from fleet.agent import AgentSession
    from fleet.agent.remote.host_state import ROOT_STATE_DIR
    from fleet.config.inventory import load_inventory
    from fleet.transport.ssh import SshTransport

    state_dir = tmp_path / "state"
    state = lab_up(1, state_dir, lab_id=fresh_id())
    (host,) = load_inventory([state.inventory_path]).hosts
    namespace = state.hosts[0].namespace
    assert namespace is not None
    inode = netns.namespace_inode(namespace)
    try:
        with SshTransport(host) as transport, \
                AgentSession(transport, host_name=host.name) as agent:
            agent.lock(controller="itest@here", controller_pid=1, run_id="r", wait_seconds=0)
        locks = list(Path(ROOT_STATE_DIR).glob(f"host-*-{inode}.lock"))
        assert len(locks) == 1
    finally:
        removed = lab_down(state_dir)
    assert f"removed {locks[0]}" in removed
    assert not locks[0].exists()
