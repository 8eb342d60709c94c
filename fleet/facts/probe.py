"""The one command that gathers a host's facts: a constant POSIX ``sh`` script.

The lead runs ``["sh", "-c", PROBE_SCRIPT]`` (one SSH exec per host). Nothing from the user is
ever interpolated into the script. An optional first positional argument is a root prefix
(``sh -c PROBE_SCRIPT sh /some/root``) so tests can run the very same script against a fixture
tree; it is passed as an argument, never pasted into the text. With a root prefix, commands
(``numactl -H``) are not run, since their output would describe the real host.

Output framing (parsed by :func:`fleet.facts.tree.parse_dump`). Every record header is a line
starting with the ASCII record separator ``\\036`` (RS), a type letter, a space and a key:

* ``RS V fleet-probe 1``   first line: format version
* ``RS F <path>``          a file read with the shell's builtin ``read`` (no fork). Body lines
  follow; a body line that itself starts with RS is escaped by doubling the RS. Ends with
  ``RS E`` (last line had a newline) or ``RS P`` (the last line had no trailing newline).
* ``RS R <path>``          a raw file copied with ``cat`` (one fork). The builtin ``read`` reads
  one byte per syscall, which some kernel files do not support, so ``cat`` is used for:
  ``/proc/sys/kernel/*`` (integer sysctls return nothing at a non-zero offset: a byte-wise read
  keeps only the first digit), ``nodeN/cpulist`` (a sysfs binary attribute: 1-byte reads return
  nothing), ``/proc/cpuinfo`` (hundreds of kB on big hosts), and as a fallback for any F file
  whose byte-wise read returned nothing. One synthetic newline is added after the content,
  then ``RS E`` (read ok) or ``RS U`` (read failed: treated as missing). Raw content cannot
  hold a line starting with RS (parse_dump rejects it); kernel text files never do.
* ``RS L <dir>``           a directory listing: one entry name per line (escaped like F), ``RS E``
* ``RS C <command>``       a command's standard output (escaped like F), ``RS E``
* ``RS A <dir>``           the modes of a directory's entries: ``ls -ln <dir>`` output (escaped
  like F), ``RS E``; one fork per KVM module parameter directory (the shell has no builtin
  that reads a mode; ``test -w`` is always true for root). Absent when ``ls`` failed.
* ``RS X <path>``          the path exists (existence probes such as ``/dev/kvm``)
* ``RS M <path|command>``  asked for, but missing, unreadable, or the command failed
* ``RS Z``                 last line: the dump is complete (its absence means truncation)

Unreadable and missing files are recorded as missing, never as empty content.
"""

from __future__ import annotations

from typing import Final

PROBE_FORMAT: Final = "fleet-probe 1"
NUMACTL_COMMAND: Final = "numactl -H"
RECORD_SEPARATOR: Final = "\x1e"

# What the probe reads, as patterns over "/"-rooted paths. ``tree_from_root`` follows the same
# spec, so a fixture tree and a probe of that tree give the same FileTree (a test checks it).
# A pattern splits after its last glob component: the glob part selects existing directories
# and the literal rest is expected in each (its absence is recorded as missing). A pattern that
# ends in a glob only reports what exists. Patterns without glob characters are expected paths.
PROBED_FILES: Final[tuple[str, ...]] = (
    "/proc/cmdline",
    "/proc/meminfo",
    "/sys/devices/system/node/online",
    "/sys/devices/system/node/possible",
    "/sys/devices/system/node/has_cpu",
    "/sys/devices/system/node/has_memory",
    "/sys/devices/system/cpu/online",
    "/sys/devices/system/cpu/possible",
    "/sys/kernel/mm/transparent_hugepage/enabled",
    "/sys/kernel/mm/transparent_hugepage/defrag",
    "/sys/devices/system/node/node[0-9]*/meminfo",
    "/sys/devices/system/node/node[0-9]*/distance",
    "/sys/devices/system/node/node[0-9]*/numastat",
    "/sys/devices/system/node/node[0-9]*/hugepages/hugepages-*/nr_hugepages",
    "/sys/devices/system/node/node[0-9]*/hugepages/hugepages-*/free_hugepages",
    "/sys/devices/system/node/node[0-9]*/hugepages/hugepages-*/surplus_hugepages",
    "/sys/kernel/mm/hugepages/hugepages-*/nr_hugepages",
    "/sys/kernel/mm/hugepages/hugepages-*/free_hugepages",
    "/sys/kernel/mm/hugepages/hugepages-*/surplus_hugepages",
    "/sys/devices/system/cpu/cpu[0-9]*/topology/physical_package_id",
    "/sys/module/kvm/parameters/*",
    "/sys/module/kvm_intel/parameters/*",
    "/sys/module/kvm_amd/parameters/*",
)
PROBED_RAW_FILES: Final[tuple[str, ...]] = (
    "/proc/sys/kernel/osrelease",
    "/proc/sys/kernel/hostname",
    "/proc/sys/kernel/numa_balancing",
    "/proc/cpuinfo",
    "/sys/devices/system/node/node[0-9]*/cpulist",
)
PROBED_LISTINGS: Final[tuple[str, ...]] = (
    "/sys/devices/system/node",
    "/sys/class/iommu",
    "/sys/kernel/iommu_groups",
    "/sys/kernel/iommu_groups/*/devices",
)
PROBED_EXISTENCE: Final[tuple[str, ...]] = ("/dev/kvm",)
# Directories whose entries' modes are recorded (``RS A``): is a module parameter writable?
PROBED_MODES: Final[tuple[str, ...]] = (
    "/sys/module/kvm/parameters",
    "/sys/module/kvm_intel/parameters",
    "/sys/module/kvm_amd/parameters",
)

PROBE_SCRIPT: Final = r"""
LC_ALL=C; export LC_ALL
R=${1-}
R=${R%/}
RS=$(printf '\036')
_h() { printf '%s%s %s\n' "$RS" "$1" "${2#"$R"}"; }
_out() {
  case $1 in "$RS"*) printf '%s%s\n' "$RS" "$1" ;; *) printf '%s\n' "$1" ;; esac
}
_body() {
  r=$1
  while [ "$r" -eq 0 ]; do
    _out "$l"
    IFS= read -r l; r=$?
  done
  if [ -n "$l" ]; then _out "$l"; printf '%sP\n' "$RS"; else printf '%sE\n' "$RS"; fi
}
_f() {
  if [ -d "$1" ]; then _h M "$1"; return; fi
  o=
  { o=1; l=; IFS= read -r l; r=$?
    if [ "$r" -eq 0 ] || [ -n "$l" ]; then _h F "$1"; _body "$r"; else o=2; fi
  } 2>/dev/null <"$1"
  case $o in 1) ;; 2) _raw "$1" ;; *) _h M "$1" ;; esac
}
_raw() {
  if [ -f "$1" ] && [ -r "$1" ]; then
    _h R "$1"
    if cat "$1" 2>/dev/null; then printf '\n%sE\n' "$RS"; else printf '\n%sU\n' "$RS"; fi
  else
    _h M "$1"
  fi
}
_l() {
  if [ -d "$1" ]; then
    _h L "$1"
    for e in "$1"/* "$1"/.[!.]* "$1"/..?*; do
      [ -e "$e" ] || [ -L "$e" ] || continue
      _out "${e##*/}"
    done
    printf '%sE\n' "$RS"
  else
    _h M "$1"
  fi
}
_modes() {
  if out=$(ls -ln "$1" 2>/dev/null) && [ -n "$out" ]; then
    _h A "$1"
    { IFS= read -r l; _body "$?"; } <<FLEET_EOF
$out
FLEET_EOF
  fi
}
_x() { if [ -e "$1" ]; then _h X "$1"; else _h M "$1"; fi; }
_pools() {
  for h in "$1"/hugepages-*; do
    [ -d "$h" ] || continue
    for n in nr_hugepages free_hugepages surplus_hugepages; do _f "$h/$n"; done
  done
}
printf '%sV fleet-probe 1\n' "$RS"
for p in /proc/sys/kernel/osrelease /proc/sys/kernel/hostname \
    /proc/sys/kernel/numa_balancing /proc/cpuinfo; do
  _raw "$R$p"
done
for p in /proc/cmdline /proc/meminfo \
    /sys/devices/system/node/online /sys/devices/system/node/possible \
    /sys/devices/system/node/has_cpu /sys/devices/system/node/has_memory \
    /sys/devices/system/cpu/online /sys/devices/system/cpu/possible \
    /sys/kernel/mm/transparent_hugepage/enabled /sys/kernel/mm/transparent_hugepage/defrag; do
  _f "$R$p"
done
_l "$R/sys/devices/system/node"
for d in "$R"/sys/devices/system/node/node[0-9]*; do
  [ -d "$d" ] || continue
  _raw "$d/cpulist"
  for n in meminfo distance numastat; do _f "$d/$n"; done
  _pools "$d/hugepages"
done
_pools "$R/sys/kernel/mm/hugepages"
for c in "$R"/sys/devices/system/cpu/cpu[0-9]*; do
  [ -d "$c" ] && _f "$c/topology/physical_package_id"
done
for m in kvm kvm_intel kvm_amd; do
  for p in "$R/sys/module/$m/parameters"/*; do
    [ -f "$p" ] && _f "$p"
  done
  [ -d "$R/sys/module/$m/parameters" ] && _modes "$R/sys/module/$m/parameters"
done
_x "$R/dev/kvm"
_l "$R/sys/class/iommu"
_l "$R/sys/kernel/iommu_groups"
for g in "$R"/sys/kernel/iommu_groups/*; do
  [ -d "$g" ] && _l "$g/devices"
done
if [ -z "$R" ]; then
  if command -v numactl >/dev/null 2>&1 && out=$(numactl -H 2>/dev/null); then
    printf '%sC numactl -H\n' "$RS"
    if [ -n "$out" ]; then
      { IFS= read -r l; _body "$?"; } <<FLEET_EOF
$out
FLEET_EOF
    else
      printf '%sE\n' "$RS"
    fi
  else
    printf '%sM numactl -H\n' "$RS"
  fi
fi
printf '%sZ\n' "$RS"
"""
