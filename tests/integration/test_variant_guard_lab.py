"""The kernel variant playbooks refuse a netns lab host (this machine's own kernel and root
filesystem) even when run without fleet's own checks: nothing is copied or booted."""

from __future__ import annotations

import pytest

from fleet.lab import LabState
from fleet.provision.ansible import PLAYBOOKS_DIR, PlaybookRequest, run_playbook

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("playbook", ["variant-install.yml", "variant-boot.yml"])
def test_variant_playbooks_refuse_a_netns_host(lab: LabState, playbook: str) -> None:
    host = lab.hosts[0].name
    result = run_playbook(PlaybookRequest(
        PLAYBOOKS_DIR / playbook, (lab.inventory_path,), limit=host,
        extravars={"kernel_deb": "/nonexistent.deb", "kernel_deb_name": "x.deb",
                   "kernel_release": "6.1.0-1-amd64", "boot_release": "6.1.0-1-amd64",
                   "boot_method": "kexec", "boot_extra_cmdline": ""}))
    (recap,) = result.hosts
    assert recap.failed == 1 and recap.changed == 0, recap
    assert recap.message is not None and "network-namespace lab host" in recap.message
