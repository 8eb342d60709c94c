"""ansible_become on real lab hosts: a normal user's login, fleet's agent and fact probe as root
through sudo (a password on sudo's stdin, never on a command line or in any output).

The lab hosts share this machine's /etc: the test adds a throwaway user and a sudoers.d file and
removes both.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from fleet.agent import AgentSession
from fleet.config.inventory import load_inventory
from fleet.errors import TransportError
from fleet.hosts import Host
from fleet.lab import LabState
from fleet.transport.ssh import SshTransport

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Account:
    name: str
    password: str


@pytest.fixture(scope="module")
def account(lab: LabState) -> Iterator[Account]:
    """A user that logs in with the lab's key and may run anything as root through sudo,
    with its password."""
    if not Path("/usr/bin/sudo").exists():
        pytest.fail("sudo is missing: scripts/bootstrap installs it", pytrace=False)
    name = f"fleetb{secrets.token_hex(3)}"
    password = "pw-" + secrets.token_hex(8)
    home = Path(tempfile.mkdtemp(prefix=f"{name}-"))  # pytest's own tmp is root's only
    sudoers = Path(f"/etc/sudoers.d/{name}")
    subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/sh", name], check=True)
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
        sudoers.write_text(f"{name} ALL=(root) PASSWD: ALL\n")
        sudoers.chmod(0o440)
        keys = home / ".ssh" / "authorized_keys"
        keys.parent.mkdir()
        keys.write_text(Path(f"{lab.client_key_path}.pub").read_text())
        subprocess.run(["chown", "-R", f"{name}:", str(home)], check=True)
        yield Account(name, password)
    finally:
        sudoers.unlink(missing_ok=True)
        subprocess.run(["userdel", name], check=False)
        shutil.rmtree(home, ignore_errors=True)


def inventory(lab: LabState, tmp_path: Path, host_vars: dict[str, object]) -> Path:
    """The lab inventory plus ``host_vars`` for its second host (Ansible merges the sources)."""
    extra = tmp_path / "become.yml"
    extra.write_text(yaml.safe_dump({"all": {"hosts": {lab.hosts[1].name: host_vars}}}))
    return extra


def become_host(lab: LabState, tmp_path: Path, host_vars: dict[str, object]) -> Host:
    extra = inventory(lab, tmp_path, host_vars)
    (host,) = load_inventory([lab.inventory_path, extra], limit=lab.hosts[1].name).hosts
    return host


def agent_uid(host: Host) -> str:
    with SshTransport(host) as ssh, AgentSession(ssh, host_name=host.name,
                                                 become=host.become) as agent:
        outcome = agent.run(["id", "-u"], timeout_seconds=10)
        return outcome.stdout.strip()


def test_agent_runs_as_root_through_sudo_with_the_password(
        lab: LabState, account: Account, tmp_path: Path) -> None:
    plain = become_host(lab, tmp_path, {"ansible_user": account.name})
    uid = subprocess.run(["id", "-u", account.name], check=True, text=True,
                         capture_output=True).stdout.strip()
    assert agent_uid(plain) == uid
    host = become_host(lab, tmp_path, {"ansible_user": account.name, "ansible_become": True,
                                       "ansible_become_password": account.password})
    assert agent_uid(host) == "0"


@pytest.mark.parametrize(("password", "said"), [("wrong", "incorrect password"),
                                                 (None, "a password is required")])
def test_sudo_refusal_is_one_line_without_the_password(
        lab: LabState, account: Account, tmp_path: Path, password: str | None,
        said: str) -> None:
    host_vars: dict[str, object] = {"ansible_user": account.name, "ansible_become": "yes"}
    if password is not None:
        host_vars["ansible_become_password"] = password
    host = become_host(lab, tmp_path, host_vars)
    with pytest.raises(TransportError) as caught:
        agent_uid(host)
    line = caught.value.line()
    assert "sudo refused to start the agent as root" in line and said in line, line
    assert "\n" not in line and account.password not in line


def test_facts_cli_probes_as_root_and_never_prints_the_password(
        lab: LabState, account: Account, tmp_path: Path) -> None:
    extra = inventory(lab, tmp_path, {"ansible_user": account.name, "ansible_become": True,
                                      "ansible_become_password": account.password})
    done = subprocess.run(
        [sys.executable, "-m", "fleet", "facts", "-i", str(lab.inventory_path), "-i",
         str(extra), "--limit", lab.hosts[1].name, "--json",
         "--store", str(tmp_path / "fleet.db")],
        check=False, capture_output=True, text=True, env={**os.environ, "FLEET_DEBUG": ""},
        timeout=120)
    assert done.returncode == 0, done.stderr
    assert account.password not in done.stdout + done.stderr
    assert lab.hosts[1].name in done.stdout
    assert account.password.encode() not in (tmp_path / "fleet.db").read_bytes()


def test_hosts_shows_who_is_become_but_never_the_password(
        lab: LabState, account: Account, tmp_path: Path) -> None:
    extra = inventory(lab, tmp_path, {"ansible_user": account.name, "ansible_become": True,
                                      "ansible_become_password": account.password})
    done = subprocess.run(
        [sys.executable, "-m", "fleet", "hosts", "-i", str(lab.inventory_path), "-i",
         str(extra), "--json"], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)["hosts"]}
    assert rows[lab.hosts[1].name]["become"] == "root"
    assert rows[lab.hosts[0].name]["become"] is None
    assert account.password not in done.stdout + done.stderr
