"""One round trip per host that reads the current state the roles would change.

The controller runs ``sh -c PROBE_SCRIPT sh FILE... -- PCI... -- PACKAGE...`` (paths and
names as arguments, never pasted into the script). Output: for each file ``RS F path`` + its
content + ``RS E``, or ``RS M path`` when it is missing or unreadable; then ``RS V`` + the PCI
lines (fleet.provision.vfio reads them) + ``RS E``; then ``RS D`` + dpkg-query's lines
(``<package> <status>``) + ``RS E``; then ``RS Z``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from fleet.errors import ProvisionError

RS: Final = "\x1e"
PROBE_SCRIPT: Final = r"""
LC_ALL=C; export LC_ALL
RS=$(printf '\036')
while [ $# -gt 0 ]; do
  p=$1; shift
  [ "$p" = -- ] && break
  if [ -f "$p" ] && c=$(cat -- "$p" 2>/dev/null); then
    printf '%sF %s\n%s\n%sE\n' "$RS" "$p" "$c" "$RS"
  else
    printf '%sM %s\n' "$RS" "$p"
  fi
done
printf '%sV\n' "$RS"
if [ "${1:---}" != -- ]; then
  printf 'vendor %s\n' "$(sed -n '/^vendor_id/{s/^[^:]*: *//;p;q;}' /proc/cpuinfo)"
fi
while [ $# -gt 0 ]; do
  a=$1; shift
  [ "$a" = -- ] && break
  d=/sys/bus/pci/devices/$a
  if [ ! -e "$d" ]; then printf 'device %s missing\n' "$a"; continue; fi
  g=-; members=$d
  if [ -e "$d/iommu_group" ]; then
    g=$(readlink "$d/iommu_group"); g=${g##*/}; members=$d/iommu_group/devices/*
  fi
  printf 'device %s %s\n' "$a" "$g"
  for m in $members; do
    drv=-
    if [ -e "$m/driver" ]; then drv=$(readlink "$m/driver"); drv=${drv##*/}; fi
    printf 'pci %s %s %s\n' "${m##*/}" "$(cat "$m/class" 2>/dev/null)" "$drv"
  done
done
printf '%sE\n%sD\n' "$RS" "$RS"
if [ $# -gt 0 ]; then dpkg-query -W -f='${Package} ${db:Status-Status}\n' -- "$@" 2>/dev/null; fi
printf '%sE\n%sZ\n' "$RS" "$RS"
"""


@dataclass(frozen=True)
class ProbedState:
    """What a host has now: file path -> content (None: missing or unreadable), and the
    installed status of packages (a package dpkg does not know is absent)."""

    files: Mapping[str, str | None]
    packages: Mapping[str, str]
    pci: tuple[str, ...] = ()  # the PCI section's lines (fleet.provision.vfio parses them)

    def installed(self, package: str) -> bool:
        return self.packages.get(package) == "installed"


def probe_argv(files: Sequence[str], packages: Sequence[str],
               pci: Sequence[str] = ()) -> list[str]:
    return ["sh", "-c", PROBE_SCRIPT, "sh", *files, "--", *pci, "--", *packages]


def parse_probe(text: str, *, host: str) -> ProbedState:
    """The probe's output; a truncated or foreign one is a ProvisionError."""
    lines = text.split("\n")
    if f"{RS}Z" not in lines:
        raise ProvisionError("the state probe's output is truncated", where=host,
                             hint="check that the host has a POSIX sh and cat")
    files: dict[str, str | None] = {}
    packages: dict[str, str] = {}
    pci: list[str] = []
    index = 0
    while index < len(lines) and lines[index] != f"{RS}Z":
        line = lines[index]
        index += 1
        if line.startswith(f"{RS}M "):
            files[line[3:]] = None
        elif line.startswith((f"{RS}F ", f"{RS}D", f"{RS}V")):
            end = lines.index(f"{RS}E", index)
            body = lines[index:end]
            index = end + 1
            if line.startswith(f"{RS}F "):
                files[line[3:]] = "\n".join(body)
            elif line.startswith(f"{RS}V"):
                pci += body
            else:
                packages.update(_package(entry) for entry in body if " " in entry)
    return ProbedState(files=files, packages=packages, pci=tuple(pci))


def _package(line: str) -> tuple[str, str]:
    name, _, status = line.partition(" ")
    return name.split(":")[0], status.strip()
