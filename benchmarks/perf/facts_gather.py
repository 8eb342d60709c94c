"""How long does `fleet facts` take per host, and why one probe command per host?

Brings up a lab of N sshd hosts (root; network namespaces), then measures, over one persistent
SSH connection per host:
  probe      one `sh -c PROBE_SCRIPT` exec (what fleet does) + parse + build_facts
  exec/file  one exec per file the probe reads (what a naive implementation would do)
  sftp/file  one SFTP read per file over the open connection
and the whole parallel gather of N hosts. Prints medians in milliseconds.

    sudo .venv/bin/python benchmarks/perf/facts_gather.py --hosts 3 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fleet.config.inventory import load_inventory
from fleet.facts.build import build_facts
from fleet.facts.gather import gather_facts
from fleet.facts.probe import PROBE_SCRIPT
from fleet.facts.tree import parse_dump
from fleet.lab import lab_down, lab_up
from fleet.transport.ssh import SshTransport


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = lab_up(args.hosts, Path(tmp) / "lab")
        try:
            run(state.inventory_path, args.repeat)
        finally:
            lab_down(Path(tmp) / "lab")


def run(inventory_path: Path, repeat: int) -> None:
    hosts = load_inventory([inventory_path]).hosts
    with SshTransport(hosts[0]) as t:
        t.run(["true"])
        tree = parse_dump(t.run(["sh", "-c", PROBE_SCRIPT]).stdout)
        files = sorted(tree.files)
        probe = median_ms(lambda: build_facts(
            hosts[0].name, parse_dump(t.run(["sh", "-c", PROBE_SCRIPT]).stdout),
            collected_at_unix_seconds=time.time()), repeat)
        per_exec = median_ms(lambda: [t.run(["cat", f]) for f in files[:20]], repeat) / 20
        per_sftp = median_ms(lambda: [t.read_file(f) for f in files[:20]], repeat) / 20
    whole = median_ms(lambda: gather_facts(hosts), repeat)
    print(f"files read by the probe:        {len(files)}")
    print(f"probe + parse, one host:        {probe:8.1f} ms")
    print(f"one exec per file (x{len(files)}):      {per_exec * len(files):8.1f} ms"
          f"  ({per_exec:.1f} ms/file)")
    print(f"one sftp read per file (x{len(files)}): {per_sftp * len(files):8.1f} ms"
          f"  ({per_sftp:.2f} ms/file)")
    print(f"gather {len(hosts)} hosts in parallel (connect included): {whole:8.1f} ms")


if __name__ == "__main__":
    main()
