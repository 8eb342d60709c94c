"""`fleet provision --variant NAME`: every selected host onto its declared kernel variant NAME.

Kinds: ``package`` and ``deb`` switch the kernel (fleet.provision.variants.switch); a
``kvm_modules`` variant first switches to its ``base`` variant (when it names one), then builds
the patched modules against the kernel the host runs (once per source, series and kernel, on
the controller: one build at a time) and installs them with the ``kvm_modules`` role, verified
by srcversion. A package or deb variant runs its kernel's own KVM modules: patched ones a
kvm_modules variant left installed for that release are rolled back. Every host's request is
checked before any host is touched; hosts then go in parallel and one failed host never hides
another (each outcome says what happened). ``reach_variant`` is one host's part (`fleet run`
provisions between variant groups with it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from fleet.config.inventory import Inventory
from fleet.config.inventory.variants import VariantSpec
from fleet.errors import FleetError, ProvisionError
from fleet.provision.variants.kernel import check_kernel_spec, reach_kernel
from fleet.provision.variants.switch import switch
from fleet.provision.variants.wait import probe
from fleet.variant import VariantIdentity

Progress = Callable[[str], None]
SUPPORTED_KINDS = ("package", "deb", "kvm_modules", "kernel")


@dataclass(frozen=True)
class VariantOutcome:
    """One host's result: the verified identity, or the one line that says why not."""

    host: str
    variant: str
    identity: VariantIdentity | None
    error: str | None


def check_variant(inventory: Inventory, name: str) -> dict[str, VariantSpec]:
    """host -> its spec of variant ``name``; ProvisionError (exit 2) when a selected host does
    not declare it or its kind cannot be provisioned in this build."""
    return {host.name: host_spec(inventory, host.name, name) for host in inventory.hosts}


def host_spec(inventory: Inventory, host: str, name: str) -> VariantSpec:
    """``host``'s spec of variant ``name``; ProvisionError (exit 2) when the host does not
    declare it, shares this machine's kernel, or its kind cannot be provisioned in this build."""
    declared = inventory.provisioning.get(host)
    spec = declared.variant(name) if declared is not None else None
    if spec is None:
        names = ", ".join(declared.variant_names()) if declared is not None else ""
        raise ProvisionError(f"host {host} declares no variant {name!r} (its "
                             f"variants: {names or 'none'})",
                             where=", ".join(map(str, inventory.sources)),
                             hint="declare it under fleet_variants, or --limit to the hosts "
                                  "that have it")
    assert declared is not None  # it declared the spec
    if declared.shared_kernel and not declared.allow_shared_changes:
        raise ProvisionError(f"host {host} is a network-namespace lab host: it shares "
                             "this machine's kernel and root filesystem, so kernel variants "
                             "are refused there", where=declared.where,
                             hint="use an emulated lab host (fleet lab up --numa), or set "
                                  "fleet_allow_shared_host_changes: true")
    if spec.kind not in SUPPORTED_KINDS:
        raise ProvisionError(f"variant {name} of host {host}: {spec.kind} variants are "
                             "not in this build yet", where=spec.where,
                             hint="use a package, deb or kvm_modules variant")
    if spec.kind == "kernel":
        check_kernel_spec(spec, host)
    if spec.kind == "kvm_modules" and spec.source is None:
        raise ProvisionError(f"variant {name} of host {host} has no source",
                             where=spec.where, hint="set source: linux-source-6.1 or a tree")
    return spec


def reach_variant(inventory: Inventory, host: str, name: str, *, cache_dir: Path,
                  build_lock: threading.Lock, progress: Progress | None = None
                  ) -> VariantIdentity:
    """Bring one host onto its variant ``name`` and return the verified identity (FleetError,
    one line, when it cannot). ``build_lock``: shared by every host of one controller."""
    return _reach(inventory, host, host_spec(inventory, host, name), cache_dir=cache_dir,
                  build_lock=build_lock, progress=progress)


def provision_variant(inventory: Inventory, name: str, *, cache_dir: Path,
                      progress: Progress | None = None) -> tuple[VariantOutcome, ...]:
    """Bring every host of ``inventory`` onto its variant ``name``; outcomes in host order."""
    specs = check_variant(inventory, name)
    build_lock = threading.Lock()

    def one(host: str) -> VariantOutcome:
        try:
            identity = _reach(inventory, host, specs[host], cache_dir=cache_dir,
                              build_lock=build_lock, progress=progress)
        except FleetError as exc:
            line = exc.line()
            return VariantOutcome(host, name, None,
                                  line if line.startswith(host) else f"{host}: {line}")
        return VariantOutcome(host, name, identity, None)

    hosts = [h.name for h in inventory.hosts]
    with ThreadPoolExecutor(max_workers=max(1, min(len(hosts), 16))) as pool:
        return tuple(pool.map(one, hosts))


def _reach(inventory: Inventory, host: str, spec: VariantSpec, *, cache_dir: Path,
           build_lock: threading.Lock, progress: Progress | None) -> VariantIdentity:
    if spec.kind in ("package", "deb"):
        identity = switch(inventory, host, spec.name, cache_dir=cache_dir, progress=progress)
        return _stock_modules(inventory, host, identity, progress=progress)
    if spec.kind == "kernel":
        return reach_kernel(inventory, host, spec, cache_dir=cache_dir, build_lock=build_lock,
                            progress=progress)
    if spec.base is not None:
        switch(inventory, host, spec.base, cache_dir=cache_dir, progress=progress)
    return _kvm_modules(inventory, host, spec, build_lock=build_lock, progress=progress)


def _stock_modules(inventory: Inventory, host: str, identity: VariantIdentity, *,
                   progress: Progress | None) -> VariantIdentity:
    """The identity of a package or deb variant once no patched KVM modules are installed for
    its release (a kvm_modules variant's are rolled back and the stock ones loaded)."""
    from fleet.provision.build import InstallRequest, rollback

    target = inventory.host(host)
    seen = probe(target)
    if not seen.fleet_modules:
        return identity
    (progress or (lambda _line: None))(f"{host}: rolling back the patched KVM modules of "
                                       f"{seen.kernel_release}")
    rollback(InstallRequest(inventory=inventory.sources, build=None,
                            kernel_release=seen.kernel_release, limit=host))
    after = probe(target)
    if after.fleet_modules:
        raise ProvisionError(f"variant {identity.variant}: patched KVM modules are still "
                             f"installed for {after.kernel_release}", where=host,
                             hint="see the kvm_modules role's output")
    return replace(identity, kvm_modules=after.kvm_modules)


def _kvm_modules(inventory: Inventory, host: str, spec: VariantSpec, *,
                 build_lock: threading.Lock, progress: Progress | None) -> VariantIdentity:
    from fleet.provision.build import BuildRequest, InstallRequest, build_kvm_modules, install

    say = progress or (lambda _line: None)
    target = inventory.host(host)
    running = probe(target)
    assert spec.source is not None  # check_variant refused it
    with build_lock:  # one build at a time: the same key is built once, then a cache hit
        say(f"{host}: building KVM modules of {spec.name} for {running.kernel_release}")
        build = build_kvm_modules(BuildRequest(source=spec.source,
                                               kernel_release=running.kernel_release,
                                               patches=tuple(Path(p) for p in spec.patches)))
    say(f"{host}: installing KVM modules {build.key[:12]}"
        f"{' (cached build)' if build.cached else ''}")
    install(InstallRequest(inventory=inventory.sources, build=build,
                           kernel_release=running.kernel_release, limit=host))
    after = probe(target)
    loaded = dict(after.kvm_modules)
    wrong = [m for m, version in build.srcversions().items()
             if m in loaded and loaded[m] != f"srcversion:{version}"]
    if "kvm" not in loaded or wrong:
        raise ProvisionError(f"variant {spec.name}: the loaded KVM modules are not the build's "
                             f"({', '.join(wrong) or 'kvm not loaded'})", where=host,
                             hint="see the kvm_modules role's output; a VM may hold /dev/kvm")
    return VariantIdentity(variant=spec.name, kind=spec.kind,
                           kernel_release=after.kernel_release, kvm_modules=after.kvm_modules,
                           cmdline=after.cmdline, source_sha256=build.source_hash,
                           series_sha256=build.series_hash)
