"""A host known only by its ~/.ssh/config entry: fleet's transport and Ansible (run by fleet)
both reach the real lab host through the same file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.lab import LabState
from fleet.provision.ansible import PlaybookRequest, run_playbook

pytestmark = pytest.mark.integration


def test_config_only_host_works_for_facts_and_ansible(
        lab: LabState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = lab.hosts[0]
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host perfbox\n  HostName {target.address}\n  Port {target.port}\n  User root\n"
        f"  IdentityFile {lab.client_key_path}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {lab.state_dir / 'known_hosts'}\n")
    inventory = tmp_path / "hosts.yml"
    # the interpreter as the lab's inventory names it (discovery may find a pyenv shim here)
    inventory.write_text("all:\n  hosts:\n    perfbox:\n"
                         "      ansible_python_interpreter: /usr/bin/python3\n")
    env = {**os.environ, "HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "fleet", "facts", "-i", str(inventory),
                           "--json", "--store", str(tmp_path / "f.db")],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert '"perfbox"' in done.stdout
    playbook = tmp_path / "ping.yml"
    playbook.write_text("- name: Ping\n  hosts: all\n  gather_facts: false\n  tasks:\n"
                        "    - name: Ping\n      ansible.builtin.ping:\n")
    monkeypatch.setenv("HOME", str(home))
    result = run_playbook(PlaybookRequest(playbook, (inventory,)))
    assert [(h.host, h.ok, h.unreachable) for h in result.hosts] == [("perfbox", 1, 0)], result
