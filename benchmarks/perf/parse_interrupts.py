"""How long does parsing /proc/interrupts of a 448-CPU host take?

Synthesizes the file from a real capture (corpus proc_interrupts_multisocket, haswell-ep:
Linux 4.13, 32 CPUs, "IR-PCI-MSI 1572864-edge hpsa0-msix0" rows): every row's counts are
tiled to N CPU columns in the kernel's " %10u" layout, and the file's per-queue PCI-MSI rows
are cloned with new IRQ numbers until it has R rows. Then times (medians, milliseconds):

  parse         parse_interrupts (header, row names; counts are parsed on first read)
  sample        parse + TLB/CAL/RES/LOC per CPU + TLB per node (8 nodes): what a sampler does
  everything    parse + the counts, info and devices of every row

    .venv/bin/python benchmarks/perf/parse_interrupts.py --cpus 448 --rows 250 --repeat 200
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from fleet.collectors.interrupts import parse_interrupts

REPO = Path(__file__).resolve().parents[2]
SOURCE = "proc_interrupts_multisocket/interrupts__deterministic_haswell-ep.txt"
_ROW = re.compile(r"^(\s*[^\s:]+:)((?:\s+\d+)+?)(\s+[^\s\d].*)?$")


def corpus_path() -> Path:
    override = os.environ.get("FLEET_CORPUS")
    return Path(override) if override else (REPO / ".." / "shared" / "corpus").resolve()


def widen(line: str, source_cpus: int, cpus: int) -> str:
    """One row with its counts tiled from ``source_cpus`` to ``cpus`` columns."""
    match = _ROW.match(line)
    if match is None:
        return line
    label, values, tail = match.group(1), match.group(2).split(), match.group(3) or ""
    if len(values) != source_cpus:  # ERR/MIS: one global count
        return line
    tiled = [values[i % source_cpus] for i in range(cpus)]
    return label + "".join(f" {int(v):10d}" for v in tiled) + tail


def synthesize(text: str, cpus: int, rows: int) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    source_cpus = len(lines[0].split())
    header = " " * 11 + "".join(f"CPU{c:<8d}" for c in range(cpus))
    body = [widen(line, source_cpus, cpus) for line in lines[1:]]
    numbered = [line for line in body if line.lstrip().split(":")[0].isdigit()]
    queues = [line for line in numbered if "PCI-MSI" in line]
    next_irq = max(int(line.split(":")[0]) for line in numbered) + 1
    clones: list[str] = []
    while len(body) + len(clones) < rows:
        template = queues[len(clones) % len(queues)]
        irq = next_irq + len(clones)
        clones.append(f"{irq:4d}:" + template.split(":", 1)[1].replace("msix", f"q{irq}-msix"))
    first_named = next(i for i, line in enumerate(body) if not line.split(":")[0].strip()
                       .isdigit())
    return "\n".join([header, *body[:first_named], *clones, *body[first_named:]]) + "\n"


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
    parser.add_argument("--cpus", type=int, default=448)
    parser.add_argument("--rows", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    text = synthesize((corpus_path() / SOURCE).read_text(), args.cpus, args.rows)
    parsed = parse_interrupts(text)
    nodes = {cpu: cpu * 8 // args.cpus for cpu in range(args.cpus)}
    assert len(parsed.cpus) == args.cpus and all(r.counts for r in parsed.rows)

    def sample() -> object:
        it = parse_interrupts(text)
        for kind in ("TLB", "CAL", "RES", "LOC"):
            it.per_cpu(kind)
        return it.per_node("TLB", nodes)

    def everything() -> object:
        it = parse_interrupts(text)
        return [(r.counts, r.info, r.devices) for r in it.rows]

    msi = sum("PCI-MSI" in r.info for r in parsed.rows)
    print(f"synthesized: {args.cpus} CPUs, {len(parsed.rows)} rows ({msi} PCI-MSI), "
          f"{len(text) / 1e6:.2f} MB")
    print(f"parse:       {median_ms(lambda: parse_interrupts(text), args.repeat):8.3f} ms")
    print(f"sample:      {median_ms(sample, args.repeat):8.3f} ms")
    print(f"everything:  {median_ms(everything, max(args.repeat // 10, 5)):8.3f} ms")


if __name__ == "__main__":
    main()
