"""Switch one host to a kernel variant: install, boot, wait, verify; roll back a failed boot.

Steps: the variant's .deb on the controller -> probe the host (already in state: done) ->
role ``kernel`` (copy, install) -> role ``boot`` (kexec or the next-boot entry) -> wait for a
new boot with a deadline -> verify release and command line -> the identity. A boot that does
not come back is power-cycled (fleet_power_command), the host is verified back on a kernel
other than the failed one, and VariantBootError says so with the console log's last lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from fleet.config.inventory import Inventory
from fleet.config.inventory.variants import HostProvisioning, VariantSpec
from fleet.errors import ProvisionError, VariantBootError
from fleet.hosts import Host
from fleet.provision.ansible import (
    PLAYBOOKS_DIR,
    PlaybookRequest,
    TaskEvent,
    describe_recaps,
    run_playbook,
)
from fleet.provision.variants.debs import KernelDeb, kernel_deb
from fleet.provision.variants.power import power_cycle
from fleet.provision.variants.wait import Console, probe, read_host_file, wait_new_boot
from fleet.variant import HostKernel, VariantIdentity, cmdline_mismatch

BASE_CMDLINE_FILE = "/var/lib/fleet/boot/base-cmdline"  # written by the boot role
INSTALL_TIMEOUT_SECONDS = 1800.0
BOOT_PLAYBOOK_TIMEOUT_SECONDS = 300.0
Progress = Callable[[str], None]
OnEvent = Callable[[TaskEvent], None]


@dataclass(frozen=True)
class _Target:
    host: Host
    provisioning: HostProvisioning
    spec: VariantSpec
    inventory: tuple[Path, ...]


def switch(inventory: Inventory, host_name: str, variant: str, *, cache_dir: Path,
           on_event: OnEvent | None = None, progress: Progress | None = None,
           built: KernelDeb | None = None) -> VariantIdentity:
    """Bring ``host_name`` onto its inventory variant ``variant`` and return the verified
    identity. ProvisionError (one line) on bad input or a failed step; VariantBootError when
    the variant did not boot and the host was rolled back. ``cache_dir`` keeps downloaded
    packages on the controller. ``built``: a kernel variant's .deb, built by the caller."""
    say = progress or (lambda _line: None)
    target = _target(inventory, host_name, variant, built=built is not None)
    deb = built or kernel_deb(target.spec, cache_dir)
    before = probe(target.host)
    base = _base_cmdline(target.host, before)
    extra = _extra_cmdline(target, base, before)
    expected = " ".join([*base.split(), *extra.split()])
    if before.kernel_release == deb.kernel_release and before.cmdline.split() == expected.split():
        say(f"{host_name}: already on variant {variant} ({deb.kernel_release})")
        return _identity(target.spec, deb, before)
    say(f"{host_name}: installing {deb.path.name}")
    _play(target, "variant-install.yml", INSTALL_TIMEOUT_SECONDS, on_event,
          {"kernel_deb": str(deb.path), "kernel_release": deb.kernel_release,
           "kernel_deb_name": f"{deb.sha256[:16]}-{deb.path.name}"})
    console = Console.mark(target.provisioning.console_log)
    say(f"{host_name}: booting {deb.kernel_release} by {target.provisioning.boot}")
    _play(target, "variant-boot.yml", BOOT_PLAYBOOK_TIMEOUT_SECONDS, on_event,
          {"boot_release": deb.kernel_release, "boot_method": target.provisioning.boot,
           "boot_extra_cmdline": extra})
    after = wait_new_boot(target.host, before.boot_id, console=console, progress=say,
                          timeout_seconds=target.provisioning.boot_timeout_seconds)
    if isinstance(after, str):
        _roll_back(target, deb, before, after, console=console, say=say)
    problem = _mismatch(deb.kernel_release, expected, after)
    if problem is not None:
        raise ProvisionError(f"variant {variant} booted, but {problem}", where=host_name,
                             hint="check the kernel package and the bootloader")
    return _identity(target.spec, deb, after)


def _target(inventory: Inventory, host_name: str, variant: str, *, built: bool = False
            ) -> _Target:
    try:
        host = inventory.host(host_name)
    except KeyError:
        raise ProvisionError(f"host {host_name} is not in the inventory",
                             where=", ".join(map(str, inventory.sources)),
                             hint="check the host name and --limit") from None
    provisioning = inventory.provisioning.get(host_name) or HostProvisioning(
        host=host_name, where=", ".join(map(str, inventory.sources)))
    spec = provisioning.variant(variant)
    if spec is None:
        names = ", ".join(provisioning.variant_names()) or "none"
        raise ProvisionError(f"variant {variant!r} is not declared for host {host_name} (its "
                             f"variants: {names})", where=provisioning.where,
                             hint="declare it under fleet_variants in the inventory")
    if provisioning.shared_kernel and not provisioning.allow_shared_changes:
        raise ProvisionError(f"host {host_name} shares this machine's kernel (a netns lab "
                             "host): kernel variants are refused there", where=provisioning.where,
                             hint="use an emulated lab host, or set "
                                  "fleet_allow_shared_host_changes: true")
    if spec.kind not in ("package", "deb") and not (built and spec.kind == "kernel"):
        raise ProvisionError(f"variant {variant}: switch() boots package and deb variants, not "
                             f"{spec.kind}", where=spec.where,
                             hint="fleet provision --variant (fleet.provision.variants.apply)")
    if provisioning.boot == "reboot" and spec.cmdline:
        raise ProvisionError(f"variant {variant} adds a command line, which needs fleet_boot: "
                             "kexec in this build", where=spec.where,
                             hint="set fleet_boot: kexec for the host, or drop cmdline")
    return _Target(host, provisioning, spec, inventory.sources)


def _extra_cmdline(target: _Target, base: str, now: HostKernel) -> str:
    """The variant's own words, plus the IOMMU words (iommu=pt and the vendor's) on a host
    that lists vfio devices and boots by kexec, each once and only when the base lacks it."""
    words = (target.spec.cmdline or "").split()
    if target.provisioning.vfio and target.provisioning.boot == "kexec":
        from fleet.provision.vfio import iommu_cmdline

        have = set(base.split()) | set(words)
        words += [w for w in iommu_cmdline(now.cpu_vendor) if w not in have]
    return " ".join(words)


def _base_cmdline(host: Host, now: HostKernel) -> str:
    """The command line the boot role builds on: the one it kept, else the running one."""
    kept = read_host_file(host, BASE_CMDLINE_FILE)
    if kept is not None and kept.strip():
        return kept.strip()
    return " ".join(w for w in now.cmdline.split() if not w.startswith(("BOOT_IMAGE=", "initrd=")))


def _play(target: _Target, playbook: str, timeout_seconds: float, on_event: OnEvent | None,
          extravars: dict[str, object]) -> None:
    result = run_playbook(PlaybookRequest(
        playbook=PLAYBOOKS_DIR / playbook, inventory=target.inventory, limit=target.host.name,
        extravars=extravars, timeout_seconds=timeout_seconds), on_event=on_event)
    recap = next((r for r in result.hosts if r.host == target.host.name), None)
    if recap is None or not recap.succeeded or result.status != "successful":
        detail = (f"{recap.failed_task}: {recap.message}" if recap is not None and
                  recap.failed_task else describe_recaps(result.hosts) or result.status)
        raise ProvisionError(f"{playbook} failed ({detail})", where=target.host.name,
                             hint="nothing was booted; fix the cause and run it again")


def _mismatch(release: str, expected_cmdline: str, seen: HostKernel) -> str | None:
    if seen.kernel_release != release:
        return f"runs {seen.kernel_release}, not {release}"
    return cmdline_mismatch(expected_cmdline, seen.cmdline)


def _identity(spec: VariantSpec, deb: KernelDeb, seen: HostKernel) -> VariantIdentity:
    return VariantIdentity(variant=spec.name, kind=spec.kind, kernel_release=seen.kernel_release,
                           kvm_modules=seen.kvm_modules, cmdline=seen.cmdline,
                           source_sha256=deb.sha256, series_sha256=None)


def _roll_back(target: _Target, deb: KernelDeb, before: HostKernel, reason: str, *,
               console: Console, say: Progress) -> NoReturn:
    """Power-cycle the host, verify it is back on another kernel, raise VariantBootError."""
    name, host = target.spec.name, target.host.name
    tail = console.tail()  # before the power cycle: a relaunched lab guest starts a new log
    why = f"variant {name} ({deb.kernel_release}) did not boot: {reason}"
    say(f"{host}: {why}; power-cycling it")
    power_cycle(target.provisioning, why)
    back = wait_new_boot(target.host, before.boot_id, console=Console.mark(None), progress=say,
                         timeout_seconds=target.provisioning.boot_timeout_seconds)
    if isinstance(back, str):
        raise ProvisionError(f"{why}; power-cycled, but the host did not come back: {back}",
                             where=host, hint="check the host's console")
    extra = (target.spec.cmdline or "").split()
    if back.kernel_release == deb.kernel_release and \
            (not extra or cmdline_mismatch(" ".join(extra), back.cmdline) is None):
        raise ProvisionError(f"{why}; power-cycled, but it came back on the failed variant",
                             where=host, hint="set the host's default boot entry by hand")
    console_note = f"; console: {tail}" if tail else ""
    raise VariantBootError(
        f"{why}; power-cycled, back on its last good kernel {back.kernel_release} "
        f"(verified){console_note}", where=host,
        hint="fix the variant (its kernel, initrd or cmdline) in the inventory",
        back_on=back.kernel_release)
