"""Pure: the verified identity of the kernel variant a host runs, and how it is read.

A host switched to a variant (``fleet.provision.variants.switch``) is probed afterwards; the
identity says what actually runs: the variant's name and kind, the kernel release, each loaded
KVM module's srcversion (or, where the kernel records none, its GNU build id), the hashes of
the source and patch series when known, and the command line. It is stored with every attempt
that ran on the host and is part of the comparability fingerprint.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from fleet.errors import ParseError

# one SSH round-trip: what the host runs now (fixed text: no user value reaches the shell)
PROBE_SCRIPT = r"""
echo "boot_id $(cat /proc/sys/kernel/random/boot_id)"
echo "release $(uname -r)"
echo "cmdline $(cat /proc/cmdline)"
if [ -d "/lib/modules/$(uname -r)/updates/fleet" ]; then echo "fleet_modules yes"; fi
echo "vendor $(sed -n 's/^vendor_id[[:space:]]*: *//p' /proc/cpuinfo | head -n 1)"
for d in /sys/module/kvm /sys/module/kvm_*; do
  [ -d "$d" ] || continue
  m=${d##*/}
  if [ -r "$d/srcversion" ]; then echo "srcversion $m $(cat "$d/srcversion")"; fi
  if [ -r "$d/notes/.note.gnu.build-id" ]; then
    echo "buildid $m $(od -An -v -tx1 "$d/notes/.note.gnu.build-id" | tr -d ' \n')"
  fi
done
"""
_NT_GNU_BUILD_ID = 3


@dataclass(frozen=True)
class HostKernel:
    """What one probe of a host saw."""

    boot_id: str
    kernel_release: str
    cmdline: str
    kvm_modules: tuple[tuple[str, str], ...]  # sorted (module, "srcversion:X" or "build-id:X")
    fleet_modules: bool = False  # patched KVM modules installed for the running release
    cpu_vendor: str | None = None  # GenuineIntel, AuthenticAMD (None: not printed)


@dataclass(frozen=True)
class VariantIdentity:
    """The verified identity of a host's kernel variant (None: not known for this kind)."""

    variant: str
    kind: str
    kernel_release: str
    kvm_modules: tuple[tuple[str, str], ...]  # sorted (module, "srcversion:X" / "build-id:X")
    cmdline: str
    source_sha256: str | None = None  # the .deb, tarball or tree the kernel/modules came from
    series_sha256: str | None = None  # the ordered patch series

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    def fingerprint_text(self) -> str:
        """What the comparability fingerprint compares (the release and cmdline are fields
        of their own there)."""
        data = {"variant": self.variant, "kind": self.kind,
                "kvm_modules": [list(m) for m in self.kvm_modules],
                "source_sha256": self.source_sha256, "series_sha256": self.series_sha256}
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def identity_from_json(text: str) -> VariantIdentity:
    data: Mapping[str, Any] = json.loads(text)
    return VariantIdentity(
        variant=str(data["variant"]), kind=str(data["kind"]),
        kernel_release=str(data["kernel_release"]),
        kvm_modules=tuple((str(m), str(v)) for m, v in data["kvm_modules"]),
        cmdline=str(data["cmdline"]), source_sha256=data.get("source_sha256"),
        series_sha256=data.get("series_sha256"))


def parse_probe(text: str, host: str) -> HostKernel:
    """PROBE_SCRIPT's output -> HostKernel. ParseError (naming the host) when a line lacks."""
    values: dict[str, str] = {}
    modules: dict[str, str] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(" ")
        if key in ("boot_id", "release", "cmdline", "fleet_modules", "vendor"):
            values[key] = rest.strip()
        elif key == "srcversion":
            module, _, version = rest.partition(" ")
            if version.strip():
                modules[module] = f"srcversion:{version.strip()}"
        elif key == "buildid":
            module, _, hex_text = rest.partition(" ")
            build_id = build_id_from_note(hex_text.strip())
            if build_id is not None and module not in modules:
                modules[module] = f"build-id:{build_id}"
    missing = [k for k in ("boot_id", "release", "cmdline") if not values.get(k)]
    if missing:
        raise ParseError(f"the kernel probe printed no {', '.join(missing)}", where=host,
                         hint="the host needs /proc, uname and a POSIX sh")
    return HostKernel(boot_id=values["boot_id"], kernel_release=values["release"],
                      cmdline=values["cmdline"], kvm_modules=tuple(sorted(modules.items())),
                      fleet_modules=values.get("fleet_modules") == "yes",
                      cpu_vendor=values.get("vendor") or None)


def build_id_from_note(hex_text: str) -> str | None:
    """The GNU build id (hex) in an ELF note section (/sys/module/M/notes/.note.gnu.build-id,
    as hex); None when it holds no such note."""
    try:
        data = bytes.fromhex(hex_text)
    except ValueError:
        return None
    offset = 0
    while offset + 12 <= len(data):
        name_size, desc_size, kind = struct.unpack_from("<III", data, offset)
        name_start = offset + 12
        desc_start = name_start + _aligned(name_size)
        name = data[name_start:name_start + name_size]
        if kind == _NT_GNU_BUILD_ID and name == b"GNU\0" and desc_start + desc_size <= len(data):
            return data[desc_start:desc_start + desc_size].hex()
        offset = desc_start + _aligned(desc_size)
    return None


def _aligned(size: int) -> int:
    return (size + 3) & ~3


def cmdline_mismatch(expected: str, booted: str) -> str | None:
    """None when the booted command line has every expected word (in order), else why not.
    The kernel may add words of its own (BOOT_IMAGE=...), so only the expected ones count."""
    words = booted.split()
    position = 0
    for word in expected.split():
        try:
            position = words.index(word, position) + 1
        except ValueError:
            return f"{word!r} is missing from the booted command line {booted!r}"
    return None
