#!/bin/sh
# vfio.sh check|plan|bind ADDR...: fleet_vfio_devices (the vfio role; fleet.provision.vfio
# makes the same checks on the controller, from one probe, before Ansible runs).
#   check: refuse (one line on stderr, exit 1, nothing changed) when the kernel command line
#          lacks the IOMMU words, a device is missing or has no IOMMU group, or a group is not
#          viable (another member keeps a host driver and is not listed, nor a bridge).
#   plan:  say which devices bind would move ("changed: ADDR..." or "unchanged").
#   bind:  modprobe vfio-pci, then for each device not on vfio-pci: driver_override, unbind,
#          drivers_probe, and verify; prints like plan.
# FLEET_VFIO_ROOT (tests only): a directory standing in for / (a copy of sysfs and /proc files).
set -u
mode=$1; shift
root=${FLEET_VFIO_ROOT:-}
sys=$root/sys/bus/pci/devices
listed=" $* "
fail() { printf '%s\n' "$*" >&2; exit 1; }
driver_of() {
  if [ -e "$1/driver" ]; then d=$(readlink "$1/driver"); echo "${d##*/}"; else echo -; fi
}

check() {
  vendor=$(sed -n '/^vendor_id/{s/^[^:]*: *//;p;q;}' "$root/proc/cpuinfo")
  case $vendor in GenuineIntel) want="iommu=pt intel_iommu=on";; *) want="iommu=pt amd_iommu=on";; esac
  hint="boot the host with '$want' on its kernel command line: a kernel variant's cmdline, or GRUB_CMDLINE_LINUX and a reboot"
  missing=
  for w in $want; do
    case " $(cat "$root/proc/cmdline") " in *" $w "*) ;; *) missing="$missing $w";; esac
  done
  for a; do
    d=$sys/$a
    [ -e "$d" ] || fail "fleet_vfio_devices: no PCI device $a on this host (check the address with lspci -D)"
    [ -e "$d/iommu_group" ] || fail "fleet_vfio_devices: $a has no IOMMU group: the IOMMU is off ($hint)"
    [ -z "$missing" ] || fail "fleet_vfio_devices: the running kernel command line lacks${missing} ($hint)"
    g=$(readlink "$d/iommu_group"); g=${g##*/}
    for m in "$d"/iommu_group/devices/*; do
      ma=${m##*/}
      case $listed in *" $ma "*) continue;; esac
      drv=$(driver_of "$m")
      case $drv in -|vfio-pci|pci-stub) continue;; esac
      case $(cat "$m/class") in 0x0604*) continue;; esac
      fail "fleet_vfio_devices: $a is in IOMMU group $g with $ma, which is bound to $drv: the group is not viable (list $ma too (it then leaves $drv), or move the device to a slot with an IOMMU group of its own)"
    done
  done
}

bind() {
  moved=
  for a; do
    d=$sys/$a
    [ "$(driver_of "$d")" = vfio-pci ] && continue
    moved="$moved $a"
    [ "$mode" = plan ] && continue
    [ -d "$root/sys/bus/pci/drivers/vfio-pci" ] || modprobe vfio-pci || fail "fleet_vfio_devices: modprobe vfio-pci failed"
    echo vfio-pci > "$d/driver_override" || fail "fleet_vfio_devices: $a: cannot set driver_override"
    if [ -e "$d/driver" ]; then echo "$a" > "$d/driver/unbind" || fail "fleet_vfio_devices: $a: cannot unbind it from $(driver_of "$d")"; fi
    echo "$a" > "$root/sys/bus/pci/drivers_probe" 2>/dev/null
    now=$(driver_of "$d")
    [ "$now" = vfio-pci ] || fail "fleet_vfio_devices: $a is on '$now' after the probe, not vfio-pci (see dmesg)"
  done
  if [ -n "$moved" ]; then echo "changed:$moved"; else echo unchanged; fi
}

case $mode in
  check) check "$@";;
  plan|bind) bind "$@";;
  *) fail "vfio.sh: unknown mode $mode";;
esac
