"""What a package-variant switch by kexec costs on an emulated lab host, step by step.

Boots one QEMU lab guest (TCG, nested KVM, the cached lab image), declares two package
variants (another Debian 6.1 kernel than the guest's, and the guest's own), then times with
fleet.provision.variants.switch, each step from switch()'s own progress lines:
  (1) to the other kernel, cold: fetch (apt-get download into an empty cache, unless
      --warm-debs) and the probe, install (role ``kernel``: copy + apt + initramfs), boot
      (role ``boot``: kexec -l + systemctl kexec, then a new boot id over SSH and the settled
      boot), verify;
  (2) the same variant again (in state: one probe, nothing installed or booted);
  (3) back to the guest's own kernel (its package is installed already: kexec only);
  (4) `fleet run`'s view: the same as (3) once more, through reach_variant (in state).
Prints seconds per step. One guest, one run: under TCG the numbers are minutes and depend on
the machine's load, which is printed with them.

    sudo .venv/bin/python benchmarks/perf/variant_switch.py [--warm-debs]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from fleet.config.inventory import load_inventory
from fleet.lab import lab_down, vm_lab_up
from fleet.lab.image.rootfs import default_cache_dir as image_cache
from fleet.lab.image.rootfs import ensure_rootfs
from fleet.provision.variants import switch
from fleet.provision.variants.apply import reach_variant
from fleet.provision.variants.debs import default_cache_dir as debs_cache
from fleet.provision.variants.wait import probe

GUEST = "vm1-2n"


def other_package(release: str) -> str:
    found = subprocess.run(["apt-cache", "search", "--names-only",
                            r"^linux-image-6\.1\.0-[0-9]+-amd64$"],
                           capture_output=True, text=True, check=True).stdout
    names = sorted({line.split()[0] for line in found.splitlines()},
                   key=lambda n: int(re.findall(r"-(\d+)-amd64", n)[0]))
    return [n for n in names if n != f"linux-image-{release}"][-1]


class Steps:
    """Progress lines with their times: the seconds between consecutive lines are steps."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, str]] = [(time.monotonic(), "start")]

    def __call__(self, line: str) -> None:
        self.marks.append((time.monotonic(), line))
        print(f"  {self.marks[-1][0] - self.marks[0][0]:7.1f} s  {line}", flush=True)

    def total(self) -> float:
        return time.monotonic() - self.marks[0][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-debs", action="store_true",
                        help="use the developer's .deb cache (do not time the download)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleet-bench-switch-") as tmp:
        state_dir = Path(tmp) / "lab"
        debs = debs_cache() if args.warm_debs else Path(tmp) / "debs"
        state = vm_lab_up(["2n"], state_dir, image=ensure_rootfs(image_cache()))
        try:
            host = load_inventory([state.inventory_path]).host(GUEST)
            release = probe(host).kernel_release
            package = other_package(release)
            extra = Path(tmp) / "variants.yml"
            extra.write_text(
                f"all:\n  hosts:\n    {GUEST}:\n      fleet_variants:\n"
                f"        other: {{kind: package, package: {package}}}\n"
                f"        own: {{kind: package, package: linux-image-{release}}}\n",
                encoding="utf-8")
            inventory = load_inventory([state.inventory_path, extra])
            results = []
            for label, variant in (("(1) to another kernel, cold", "other"),
                                   ("(2) the same again (in state)", "other"),
                                   ("(3) back to the guest's own kernel", "own")):
                print(f"{label}: load average {os.getloadavg()[0]:.1f}", flush=True)
                steps = Steps()
                switch(inventory, GUEST, variant, cache_dir=debs, progress=steps)
                results.append((label, steps.total()))
            steps = Steps()
            reach_variant(inventory, GUEST, "own", cache_dir=debs, build_lock=threading.Lock(),
                          progress=steps)
            results.append(("(4) fleet run's reach_variant, in state", steps.total()))
        finally:
            lab_down(state_dir)
    print(f"\n{package} <-> linux-image-{release}, one guest (2 nodes, 4 vCPUs, TCG)")
    for label, seconds in results:
        print(f"{label:45s} {seconds:8.1f} s")


if __name__ == "__main__":
    main()
