"""Start-up time of the command line: wall time of `fleet --version`, `--help`, `runs` and
`show` (median of N), and what `python -X importtime` says they import.

    .venv/bin/python benchmarks/perf/cli_startup.py --repeat 11 --store /tmp/fleet.sqlite

``--store``: a store with at least one run (`runs` and `show` read its newest run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "scipy", "otava", "matplotlib", "ansible", "paramiko", "rich")


def fleet(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, check=True)


def timed(args: list[str], repeat: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (user + system: what a loaded machine
    does not inflate as much) of ``python ARGS``."""
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        fleet(*args)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def imported(argv: list[str]) -> tuple[float, list[str]]:
    """Seconds of import time (the top-level imports' cumulative times, as importtime
    counts them) and which heavy packages were loaded."""
    err = fleet("-X", "importtime", "-m", "fleet", *argv).stderr
    total_us, heavy = 0, set[str]()
    for line in err.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or \
                not parts[1].strip().isdigit():
            continue
        name = parts[2].strip()
        if not parts[2].startswith("  "):  # top level: one space after the bar
            total_us += int(parts[1])
        heavy.update(h for h in HEAVY if name == h or name.startswith(h + "."))
    return total_us / 1e6, sorted(heavy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--store", type=Path, required=True)
    args = parser.parse_args()
    runs = json.loads(fleet("-m", "fleet", "runs", "--json", "--store", str(args.store)).stdout)
    run_id = runs["runs"][-1]["run_id"]
    wall, cpu = timed(["-c", "pass"], args.repeat)
    print(f"python -c pass: {wall:.3f} s wall, {cpu:.3f} s CPU (medians of {args.repeat}); "
          f"load average {os.getloadavg()[0]:.1f}")
    for argv in (["--version"], ["--help"], ["runs", "--store", str(args.store)],
                 ["show", run_id, "--store", str(args.store)]):
        wall, cpu = timed(["-m", "fleet", *argv], args.repeat)
        import_seconds, heavy = imported(argv)
        print(f"fleet {argv[0]}: {wall:.3f} s wall, {cpu:.3f} s CPU; importtime "
              f"{import_seconds:.3f} s; heavy: {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
