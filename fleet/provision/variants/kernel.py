"""A ``kernel`` variant on one host: build the patched kernel on the controller (once per
source, series and config: under the caller's build lock, so the same key is built once and
then found in the cache), then install and boot its .deb like a ``deb`` variant.

The config is the variant's file, or (``running``, the default) the host's
/boot/config-RELEASE read over fleet's transport. A host already on a fleet-built kernel
reports that build's config, not the one it was built from: its base config is then the one
kept with the build, so a second run finds the same key (and the host already in state).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from fleet.config.inventory import Inventory
from fleet.config.inventory.variants import VariantSpec
from fleet.errors import ProvisionError
from fleet.hosts import Host
from fleet.provision.variants.debs import built_deb
from fleet.provision.variants.switch import switch
from fleet.provision.variants.wait import probe, read_host_file
from fleet.variant import VariantIdentity

Progress = Callable[[str], None]
RUNNING = "running"


def check_kernel_spec(spec: VariantSpec, host: str) -> None:
    """Before any host is touched: a source, and a config file that exists."""
    if spec.source is None:
        raise ProvisionError(f"variant {spec.name} of host {host} has no source",
                             where=spec.where, hint="set source: linux-source-6.1 or a tree")
    if spec.config not in (None, RUNNING) and not Path(spec.config).is_file():
        raise ProvisionError(f"variant {spec.name} of host {host}: config file {spec.config} "
                             "not found", where=spec.where,
                             hint="give a kernel .config file, or config: running")


def reach_kernel(inventory: Inventory, host: str, spec: VariantSpec, *, cache_dir: Path,
                 build_lock: threading.Lock, progress: Progress | None) -> VariantIdentity:
    from fleet.provision.build.kernel import KernelBuildRequest, build_kernel

    say = progress or (lambda _line: None)
    assert spec.source is not None  # check_kernel_spec refused it
    config_text, origin = base_config(inventory.host(host), spec)
    with build_lock:  # one build at a time: the same key is built once, then a cache hit
        say(f"{host}: building kernel {spec.name} ({origin})")
        build = build_kernel(KernelBuildRequest(
            source=spec.source, config_text=config_text, config_origin=origin,
            patches=tuple(Path(p) for p in spec.patches)))
    say(f"{host}: kernel {build.kernel_release} {build.key}"
        f"{' (cached build)' if build.cached else f' built in {build.build_seconds} s'}")
    identity = switch(inventory, host, spec.name, cache_dir=cache_dir, progress=progress,
                      built=built_deb(build.deb, build.kernel_release))
    return replace(identity, source_sha256=build.source_hash, series_sha256=build.series_hash)


def base_config(host: Host, spec: VariantSpec) -> tuple[str, str]:
    """(the config text the build starts from, where it came from)."""
    if spec.config not in (None, RUNNING):
        path = Path(spec.config)
        return path.read_text(), str(path)
    from fleet.provision.build.kernel.build import kept_base_config

    release = probe(host).kernel_release
    kept = kept_base_config(release)
    if kept is not None:
        return kept, f"the base config of the fleet build {release}"
    text = read_host_file(host, f"/boot/config-{release}")
    if not text or "CONFIG_" not in text:
        raise ProvisionError(f"variant {spec.name}: no /boot/config-{release} on the host to "
                             "build from (config: running)", where=host.name,
                             hint="give the variant a config file instead")
    return text, f"the running config of {host.name} (/boot/config-{release})"
