"""What `fleet run` provisions with: each host's declared kernel variants and a provisioner
that brings the host onto one of them (fleet.provision.variants.apply.reach_variant: the same
steps as `fleet provision --variant`), then gathers the host's facts again.

Only hosts that declare variants (fleet_variants) get one; the Ansible side is imported only
then, so a run without variants does not pay for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from fleet.config.inventory import Inventory
from fleet.execute.variants import HostVariants, Progress, Provisioned
from fleet.model import Facts

Regather = Callable[[str], Facts | None]  # host -> its facts now (None: not gathered)


def run_provisioners(inventory: Inventory, regather: Regather, *,
                     cache_dir: Path | None = None) -> Mapping[str, HostVariants]:
    """host -> its declared variant names and provisioner (hosts declaring none: absent).
    Every declared name counts, so a variant this build cannot provision fails its cases
    with the reason instead of being taken for a kernel release."""
    declared = {name: frozenset(p.variant_names()) for name, p in inventory.provisioning.items()
                if p.variant_names()}
    if not declared:
        return {}
    from fleet.provision.variants.apply import reach_variant
    from fleet.provision.variants.debs import default_cache_dir

    cache = cache_dir or default_cache_dir()
    build_lock = threading.Lock()  # one build at a time on this controller

    def provisioner(host: str) -> Callable[[str, Progress], Provisioned]:
        def provision(variant: str, progress: Progress) -> Provisioned:
            identity = reach_variant(inventory, host, variant, cache_dir=cache,
                                     build_lock=build_lock, progress=progress)
            return Provisioned(identity, regather(host))
        return provision

    return {host.name: HostVariants(declared[host.name], provisioner(host.name))
            for host in inventory.hosts if host.name in declared}
