"""What does the agent's sampler cost the host, per sample and at 1 Hz?

Runs the real agent (LocalTransport: this machine) on a sampled `sleep` and reads the agent's
own CPU time from every sample message (``agent_cpu_seconds``: user + system of the agent
process, CLOCK_PROCESS_CPUTIME_ID). Then, for the same files:

  agent         agent CPU per sample: median of the per-interval CPU deltas (each interval
                holds one sample and the loop's wakeup; the first sample, which opens files, is
                left out) at --interval (default 0.1 s), with everything fleet samples
  agent (system) the same with processes and kmsg off: only /proc/vmstat, /proc/interrupts
                and nodeN/{meminfo,numastat,vmstat}, the sources of the node_exporter
                collectors below (plus nodeN/vmstat)
  cat           CPU of one `cat` of the same files (a fresh process per sample, as a shell
                loop would sample): user + system from wait4, median
  node_exporter CPU per scrape of prometheus-node-exporter (Debian package) started on
                127.0.0.1 with only the meminfo_numa, vmstat and interrupts collectors,
                scraped --scrapes times with urllib, paced at the agent's --interval (the
                comparison: both wake up cold for each) and back to back (warm caches; no
                real scrape interval is that short); CPU from /proc/PID/stat utime + stime
                over all scrapes (clock ticks), divided by the scrape count
  1 Hz          the agent's CPU / wall time over --hz-seconds of sampling at 1 s

Goals: agent <= 1.5 x cat; agent <= 0.5 x node_exporter; 1 Hz < 1 % of one core.

    .venv/bin/python benchmarks/perf/sampler_overhead.py --samples 300 --scrapes 300
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from fleet.agent.protocol import SampleSpec
from fleet.agent.session import AgentSession
from fleet.config.sampling import KVM_STATS
from fleet.hosts import Host
from fleet.transport.local import LocalTransport

TICK_SECONDS = 1 / os.sysconf("SC_CLK_TCK")
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"


def sampled(interval: float, seconds: float, *,
            system_only: bool = False) -> list[Mapping[str, Any]]:
    bodies: list[Mapping[str, Any]] = []
    spec = SampleSpec(interval, kmsg=False, processes=False) if system_only else \
        SampleSpec(interval, kvm_stats=KVM_STATS)
    transport = LocalTransport(Host(name="me", address="localhost", connection="local"))
    with AgentSession(transport, host_name="me") as agent:
        outcome = agent.run(["sleep", str(seconds)], timeout_seconds=seconds + 30,
                            sample=spec, on_sample=bodies.append)
    assert outcome.ok, outcome.stderr
    return bodies


def agent_cpu_per_sample(bodies: Sequence[Mapping[str, Any]]) -> tuple[float, float, list[str]]:
    """(median CPU seconds per sample, median sample wall seconds, the files it read)."""
    periodic = [b for b in bodies if not b["final"]][1:]
    cpu = [b["agent_cpu_seconds"] for b in periodic]
    deltas = [b - a for a, b in itertools.pairwise(cpu)]
    keys = sorted(bodies[0]["files"])
    return (statistics.median(deltas), statistics.median(b["sample_seconds"] for b in periodic),
            keys)


def paths_of(keys: Sequence[str], pid: int) -> list[str]:
    """The host paths behind the agent's file keys, the pid files for ``pid``."""
    out = []
    for key in keys:
        if key in ("vmstat", "interrupts"):
            out.append(f"/proc/{key}")
        elif key.startswith("node") and not key.endswith("cpulist"):
            out.append(f"/sys/devices/system/node/{key}")
        elif key.startswith("pid/"):
            out.append(f"/proc/{pid}/{key.rsplit('/', 1)[1]}")
        elif key.startswith("kvm/") and os.path.exists(f"/sys/kernel/debug/{key}"):
            out.append(f"/sys/kernel/debug/{key}")
    return out


def cat_cpu_per_sample(paths: Sequence[str], repeat: int) -> float:
    costs = []
    for _ in range(repeat):
        proc = subprocess.Popen(["cat", *paths], stdout=subprocess.DEVNULL)
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
        costs.append(usage.ru_utime + usage.ru_stime)
    return statistics.median(costs)


def process_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_SECONDS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_exporter_cpu_per_scrape(scrapes: int, pace_seconds: float) -> tuple[float, int] | None:
    """(CPU seconds per scrape, bytes per scrape); None when the package is not installed.

    ``pace_seconds`` apart (0: back to back). Paced like the agent samples, node_exporter pays
    the same wakeup and cold caches per scrape that the agent pays per sample; back to back it
    runs warm, which no real scrape interval gives it."""
    if not os.path.exists(NODE_EXPORTER):
        return None
    port = free_port()
    proc = subprocess.Popen([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}",
                             "--collector.disable-defaults", "--collector.meminfo_numa",
                             "--collector.vmstat", "--collector.interrupts"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 10
        while True:
            try:
                size = len(urllib.request.urlopen(url, timeout=5).read())
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        for _ in range(5):  # warm up
            urllib.request.urlopen(url, timeout=5).read()
        before = process_cpu_seconds(proc.pid)
        for _ in range(scrapes):
            if pace_seconds:
                time.sleep(pace_seconds)
            urllib.request.urlopen(url, timeout=5).read()
        return (process_cpu_seconds(proc.pid) - before) / scrapes, size
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--scrapes", type=int, default=300)
    parser.add_argument("--hz-seconds", type=float, default=20.0)
    args = parser.parse_args()
    if shutil.which("cat") is None:
        sys.exit("cat not found")
    bodies = sampled(args.interval, args.samples * args.interval)
    agent, wall, keys = agent_cpu_per_sample(bodies)
    system, _, _ = agent_cpu_per_sample(sampled(args.interval, args.samples * args.interval,
                                                system_only=True))
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        paths = paths_of(keys, sleeper.pid)
        cat = cat_cpu_per_sample(paths, args.samples)
    finally:
        sleeper.kill()
        sleeper.wait()
    print(f"files per sample ({len(paths)}): {' '.join(paths)}")
    print(f"agent: {agent * 1e3:.3f} ms CPU per sample (median of {len(bodies) - 2}; "
          f"wall {wall * 1e3:.3f} ms)")
    print(f"cat:   {cat * 1e3:.3f} ms CPU per sample  -> agent / cat = {agent / cat:.2f} "
          f"(goal <= 1.5)")
    for pace, how in ((args.interval, f"paced like the agent, one per {args.interval:g} s"),
                      (0.0, "back to back")):
        exporter = node_exporter_cpu_per_scrape(args.scrapes, pace)
        if exporter is None:
            print("node_exporter: not installed (apt-get install prometheus-node-exporter)")
            break
        per_scrape, size = exporter
        print(f"node_exporter ({how}): {per_scrape * 1e3:.3f} ms CPU per scrape ({size} bytes)"
              f" -> agent / node_exporter = {agent / per_scrape:.2f}, agent (system files only,"
              f" {system * 1e3:.3f} ms) / node_exporter = {system / per_scrape:.2f} "
              f"(goal <= 0.5)")
    slow = sampled(1.0, args.hz_seconds)
    cpu = [b["agent_cpu_seconds"] for b in slow]
    mono = [b["monotonic_seconds"] for b in slow]
    ratio = (cpu[-1] - cpu[1]) / (mono[-1] - mono[1])
    print(f"1 Hz: agent CPU {ratio * 100:.3f} % of one core over {mono[-1] - mono[1]:.1f} s "
          f"(goal < 1 %)")


if __name__ == "__main__":
    main()
