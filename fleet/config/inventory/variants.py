"""Kernel variants and boot settings declared in the inventory (host or group variables).

    fleet_variants:                 # name -> spec; a suite's ``kernel`` axis names one
      deb-6.1.0-56: {kind: package, package: linux-image-6.1.0-56-amd64}
      local:        {kind: deb, deb: debs/linux-image-6.1.0-55-amd64_6.1.158-1_amd64.deb}
      eps-patch:    {kind: kvm_modules, source: linux-source-6.1,
                     patches: [patches/0001-x.patch], base: deb-6.1.0-56}
      my-kernel:    {kind: kernel, source: /src/linux, patches: [], config: running}
    fleet_boot: kexec               # or reboot (the bootloader's next-boot entry; the default)
    fleet_power_command: [ipmitool, -H, bmc1, chassis, power, cycle]   # argv, no shell
    fleet_console_log: /var/log/conserver/host1.log
    fleet_boot_timeout_seconds: 300

Every spec may add ``cmdline`` (extra kernel command line words). Relative paths are relative
to the file that declares them. Unknown keys and bad values are InventoryErrors naming the
file:line (and the host and variant). Pure: the caller passes the host's variables and a
function that tells where a value was read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fleet.config.inventory.variables import shares_controller
from fleet.errors import InventoryError

VariantKind = Literal["package", "deb", "kvm_modules", "kernel"]
BootMethod = Literal["kexec", "reboot"]
KINDS: tuple[VariantKind, ...] = ("package", "deb", "kvm_modules", "kernel")
_KEYS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # kind -> (required, optional)
    "package": (("package",), ("cmdline",)),
    "deb": (("deb",), ("cmdline",)),
    "kvm_modules": (("source",), ("patches", "base", "cmdline")),
    "kernel": (("source",), ("patches", "config", "cmdline")),
}
VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
# a Debian package that holds one kernel (not a metapackage such as linux-image-amd64)
KERNEL_PACKAGE = re.compile(r"linux-image-(\d+\.\d+[0-9A-Za-z.+~-]*)")
METAPACKAGE = re.compile(r"linux-image-(\d+\.\d+-)?(amd64|arm64|cloud-amd64|rt-amd64)")
DEFAULT_BOOT_TIMEOUT_SECONDS = 300.0
VARIANTS_VAR = "fleet_variants"
HINT = "see the README's 'Kernel variants' section for the fields of each kind"

Locate = Callable[[object], str | None]  # where a value was read ("file:line:col"), if known


@dataclass(frozen=True)
class VariantSpec:
    """One declared variant. Paths are absolute (resolved against the declaring file)."""

    name: str
    kind: VariantKind
    where: str  # file:line of its declaration (or the inventory file)
    cmdline: str | None = None  # extra kernel command line words
    package: str | None = None  # package: the Debian package (one kernel, not a metapackage)
    deb: Path | None = None  # deb: the .deb on the controller
    source: str | None = None  # kvm_modules, kernel: a tree, a tarball or a source package
    patches: tuple[str, ...] = ()  # kvm_modules, kernel: in order (paths resolved if relative)
    base: str | None = None  # kvm_modules: the variant whose kernel the modules are built for
    config: str | None = None  # kernel: "running" or a config file

    def package_release(self) -> str | None:
        """The kernel release a package variant installs ("6.1.0-56-amd64"), from its name."""
        match = KERNEL_PACKAGE.fullmatch(self.package or "")
        return match.group(1) if match else None


@dataclass(frozen=True)
class HostProvisioning:
    """What the inventory says about provisioning one host."""

    host: str
    where: str  # the inventory file (for errors that concern the host as a whole)
    variants: tuple[VariantSpec, ...] = ()
    boot: BootMethod = "reboot"
    power_command: tuple[str, ...] | None = None
    console_log: Path | None = None
    boot_timeout_seconds: float = DEFAULT_BOOT_TIMEOUT_SECONDS
    # a network-namespace lab host: this machine's own kernel and root filesystem
    shared_kernel: bool = False
    allow_shared_changes: bool = False  # fleet_allow_shared_host_changes: true
    vfio: bool = False  # fleet_vfio_devices lists devices: variants boot with the IOMMU words

    def variant(self, name: str) -> VariantSpec | None:
        return next((v for v in self.variants if v.name == name), None)

    def variant_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants)


def parse_provisioning(host: str, variables: Mapping[str, object], locate: Locate, *,
                       boot: BootMethod | None) -> HostProvisioning:
    """The host's fleet_variants, fleet_power_command, fleet_console_log and
    fleet_boot_timeout_seconds (all optional). InventoryError (file:line) on any bad value.
    ``boot``: the host's boot method as read with its connection (``Host.boot``: fleet_boot, or
    kexec for an emulated lab guest); None is a reboot."""
    inventory_file = str(variables.get("inventory_file") or "inventory")
    base = Path(str(variables.get("inventory_dir") or "."))

    def where(value: object) -> str:
        return locate(value) or inventory_file

    raw = variables.get(VARIANTS_VAR)
    variants = _variants(host, raw, where, base) if raw is not None else ()
    return HostProvisioning(
        host=host, where=inventory_file, variants=variants,
        boot=boot or "reboot",
        power_command=_argv(host, variables.get("fleet_power_command"), where),
        console_log=_path_var(host, variables.get("fleet_console_log"), where, base),
        boot_timeout_seconds=_seconds(host, variables.get("fleet_boot_timeout_seconds"), where),
        shared_kernel=shares_controller(variables),
        # a boolean, as fleet provision requires it (anything else: refused, the safe side)
        allow_shared_changes=variables.get("fleet_allow_shared_host_changes") is True,
        vfio=bool(variables.get("fleet_vfio_devices")))  # checked by fleet.provision.desired


def _error(what: str, where: str, host: str, hint: str = HINT) -> InventoryError:
    return InventoryError(f"host {host}: {what}", where=where, hint=hint)


def _variants(host: str, raw: object, where: Callable[[object], str], base: Path
              ) -> tuple[VariantSpec, ...]:
    if not isinstance(raw, Mapping):
        raise _error(f"{VARIANTS_VAR} must be a mapping of variant name -> spec, not "
                     f"{_type(raw)}", where(raw), host)
    specs = tuple(_spec(host, name, spec, where, base) for name, spec in raw.items())
    for spec in specs:
        _check_base(host, spec, specs)
    return specs


def _spec(host: str, key: object, raw: object, where: Callable[[object], str], base: Path
          ) -> VariantSpec:
    at, name = where(key), str(key)
    if not VARIANT_NAME.fullmatch(name):
        raise _error(f"variant name {name!r} is not a name (letters, digits, _ . + -)", at, host)
    label = f"variant {name}"
    if not isinstance(raw, Mapping):
        raise _error(f"{label}: its spec must be a mapping with a kind, not "
                     f"{_type(raw)}", at, host)
    kind = raw.get("kind")
    if kind not in KINDS:
        raise _error(f"{label}: kind {kind!r} is not one of {', '.join(KINDS)}"
                     if kind is not None else f"{label}: no kind", where(kind or raw), host)
    required, optional = _KEYS[str(kind)]
    for given in raw:
        if given != "kind" and given not in (*required, *optional):
            raise _error(f"{label}: unknown key {given!r} for kind {kind}", where(given), host,
                         hint=f"a {kind} variant takes {', '.join((*required, *optional))}")
    for needed in required:
        if raw.get(needed) is None:
            raise _error(f"{label}: a {kind} variant needs {needed!r}", at, host)
    text = _Text(host, label, raw, where)
    return VariantSpec(
        name=name, kind=kind, where=at, cmdline=text.cmdline(),
        package=text.package(), deb=text.deb(base), source=text.source(base),
        patches=text.patches(base), base=text.word("base"), config=text.config(base))


class _Text:
    """Reads and checks the string fields of one spec."""

    def __init__(self, host: str, label: str, raw: Mapping[str, object],
                 where: Callable[[object], str]) -> None:
        self.host, self.label, self.raw, self.where = host, label, raw, where

    def string(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip() or "\n" in value or "\0" in value:
            raise _error(f"{self.label}: {key} must be a one-line, non-empty string",
                         self.where(value), self.host)
        return value.strip()

    def word(self, key: str) -> str | None:
        value = self.string(key)
        if value is not None and not VARIANT_NAME.fullmatch(value):
            raise _error(f"{self.label}: {key} {value!r} is not a name", self.where(
                self.raw[key]), self.host)
        return value

    def cmdline(self) -> str | None:
        value = self.string("cmdline")
        return " ".join(value.split()) if value is not None else None

    def package(self) -> str | None:
        value = self.string("package")
        if value is None:
            return None
        if METAPACKAGE.fullmatch(value) or not KERNEL_PACKAGE.fullmatch(value):
            raise _error(f"{self.label}: package {value!r} is not a versioned kernel package",
                         self.where(self.raw["package"]), self.host,
                         hint="name one that holds a kernel, e.g. linux-image-6.1.0-56-amd64 "
                              "(apt-cache search linux-image-)")
        return value

    def deb(self, base: Path) -> Path | None:
        value = self.string("deb")
        if value is None:
            return None
        if not value.endswith(".deb"):
            raise _error(f"{self.label}: deb {value!r} is not a .deb file name",
                         self.where(self.raw["deb"]), self.host)
        return _resolve(value, self._base(self.raw["deb"], base))

    def source(self, base: Path) -> str | None:
        value = self.string("source")
        if value is None or "/" not in value:
            return value  # a Debian source package name (linux-source-6.1) stays a name
        return str(_resolve(value, self._base(self.raw["source"], base)))

    def patches(self, base: Path) -> tuple[str, ...]:
        value = self.raw.get("patches")
        if value is None:
            return ()
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise _error(f"{self.label}: patches must be a list of patch files",
                         self.where(value), self.host)
        found = []
        for item in value:
            if not isinstance(item, str) or not item.strip():
                raise _error(f"{self.label}: every patch must be a file path",
                             self.where(item), self.host)
            found.append(str(_resolve(item.strip(), self._base(item, base))))
        return tuple(found)

    def config(self, base: Path) -> str | None:
        value = self.string("config")
        if value is None or value == "running":
            return value
        return str(_resolve(value, self._base(self.raw["config"], base)))

    def _base(self, value: object, default: Path) -> Path:
        at = self.where(value)
        file = at.split(":", 1)[0]
        return Path(file).parent if file and Path(file).is_absolute() else default


def _type(value: object) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, Sequence):
        return "a list"
    return "a number" if isinstance(value, (int, float)) else type(value).__name__


def _resolve(text: str, base: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _check_base(host: str, spec: VariantSpec, specs: tuple[VariantSpec, ...]) -> None:
    if spec.base is None:
        return
    found = next((s for s in specs if s.name == spec.base), None)
    if found is None or found.kind not in ("package", "deb"):
        names = ", ".join(s.name for s in specs if s.kind in ("package", "deb")) or "none"
        raise _error(f"variant {spec.name}: base {spec.base!r} is not a package or deb variant "
                     f"of this host (those: {names})", spec.where, host)


def _argv(host: str, value: object, where: Callable[[object], str]) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence) or not value \
            or not all(isinstance(w, (str, int)) and str(w) for w in value):
        raise _error("fleet_power_command must be a non-empty list of words (an argv, run "
                     "without a shell)", where(value), host,
                     hint="e.g. [ipmitool, -H, bmc1, -U, admin, chassis, power, cycle]")
    return tuple(str(w) for w in value)


def _path_var(host: str, value: object, where: Callable[[object], str], base: Path
              ) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _error("fleet_console_log must be a file path", where(value), host,
                     hint="the file where the host's serial console is logged")
    return _resolve(value.strip(), base)


def _seconds(host: str, value: object, where: Callable[[object], str]) -> float:
    if value is None:
        return DEFAULT_BOOT_TIMEOUT_SECONDS
    try:
        seconds = float(str(value))
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 86400:
        raise _error(f"fleet_boot_timeout_seconds {value!r} is not a positive number of "
                     "seconds", where(value), host, hint="e.g. 300")
    return seconds
