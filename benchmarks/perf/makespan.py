"""How close does `fleet run` get to the best possible makespan, and what does a case cost?

Brings up an 8-host lab (root; network namespaces with their own sshd) in a temp dir, runs a
heterogeneous synthetic suite through fleet.api.run.start_run (the code `fleet run` calls):
sleep cases of mixed lengths, spread `any` (some restricted to lab1-4 or lab5-8) and `every`.

  makespan     from RunStarted (the executor starts; each host's connection and agent are
               up since its facts were probed through it) to the end of the last attempt;
               also "busy" = first attempt start to last attempt end, and the whole
               start_run end to end
  lower bound  max(longest job, max over eligible host sets S of work that only S can run /
               |S|): no schedule on these hosts can be shorter
  dispatch     per attempt: its wall time as the executor saw it minus the workload's own
               duration as the agent measured it; "gap": per host, busy span minus the sum of
               its attempts, per attempt (taking the next job, recording, events)

Goal: makespan <= 1.05 x lower bound. Runs each configuration --repeat times (medians).

    sudo .venv/bin/python benchmarks/perf/makespan.py --repeat 3
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from fleet.api.run import RunRequest, start_run
from fleet.execute.events import AttemptFinished, RunEvent, RunStarted
from fleet.execute.executor import ExecuteOptions
from fleet.lab import lab_down, lab_up
from fleet.runs import Attempt

GOAL_RATIO = 1.05
HOSTS = 8
# (name, seconds axis, repetitions, spread, host patterns)
WORKLOADS = (
    ("mixed", (0.5, 1.25, 2.5, 3.5), 6, "any", ()),
    ("big_only", (2.0, 3.0), 5, "any", ("lab[1-4]",)),
    ("small_only", (0.75, 1.75), 6, "any", ("lab[5-8]",)),
    ("everywhere", (0.6,), 4, "every", ()),
)


def suite_text() -> str:
    lines = ["schema_version: 1", "name: makespan", "timeout_seconds: 30", "workloads:"]
    for name, seconds, reps, spread, patterns in WORKLOADS:
        lines += [f"  - name: {name}", "    type: sleep", f"    repetitions: {reps}",
                  f"    spread: {spread}", f"    axes: {{seconds: {list(seconds)}}}"]
        if patterns:
            lines.append(f"    requires: {{hosts: {list(patterns)}}}")
    return "\n".join(lines) + "\n"


def lower_bound(hosts: list[str]) -> tuple[float, float, float]:
    """(bound, longest job, total work) for WORKLOADS on these hosts."""
    jobs: list[tuple[float, frozenset[str]]] = []
    for _, seconds, reps, spread, patterns in WORKLOADS:
        eligible = frozenset(h for h in hosts if not patterns
                             or any(fnmatchcase(h, p) for p in patterns))
        for s in seconds:
            for _ in range(reps):
                if spread == "every":
                    jobs.extend((s, frozenset({h})) for h in eligible)
                else:
                    jobs.append((s, eligible))
    sets = {e for _, e in jobs} | {frozenset(hosts)}
    by_set = max(sum(s for s, e in jobs if e <= group) / len(group) for group in sets)
    longest = max(s for s, _ in jobs)
    return max(longest, by_set), longest, sum(s for s, _ in jobs)


@dataclass
class Sample:
    makespan_seconds: float
    busy_seconds: float
    dispatch_seconds: list[float]
    gap_seconds: list[float]
    attempts: int
    wall_seconds: float  # the whole start_run: connect, agents, facts, plan, record, execute


def one_run(inventory: Path, store: Path, suite: Path, seed: int, steal: bool) -> Sample:
    started: list[float] = []
    finished: list[AttemptFinished] = []

    def on_event(event: RunEvent) -> None:
        if isinstance(event, RunStarted):
            started.append(time.time())
        elif isinstance(event, AttemptFinished):
            finished.append(event)

    called = time.time()
    report = start_run(RunRequest(suite, (inventory,), None, seed, store), on_event=on_event,
                       on_warning=print, options=ExecuteOptions(steal=steal))
    wall = time.time() - called
    assert report.summary.all_completed, report.summary
    attempts = [f.attempt for f in finished]
    end = max(a.ended_at_unix_seconds for a in attempts)
    first = min(a.started_at_unix_seconds for a in attempts)
    dispatch = [f.attempt.duration_seconds - f.workload_seconds for f in finished
                if f.workload_seconds is not None]
    return Sample(end - started[0], end - first, dispatch, gaps(attempts), len(attempts), wall)


def gaps(attempts: list[Attempt]) -> list[float]:
    by_host: dict[str, list[Attempt]] = defaultdict(list)
    for a in attempts:
        by_host[a.host].append(a)
    out = []
    for mine in by_host.values():
        mine.sort(key=lambda a: a.started_at_unix_seconds)
        out += [b.started_at_unix_seconds - a.ended_at_unix_seconds
                for a, b in itertools.pairwise(mine)]
    return out


def ms(values: list[float], q: float = 0.5) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def report(label: str, samples: list[Sample], bound: float) -> None:
    makespan = statistics.median(s.makespan_seconds for s in samples)
    busy = statistics.median(s.busy_seconds for s in samples)
    dispatch = [d for s in samples for d in s.dispatch_seconds]
    gap = [g for s in samples for g in s.gap_seconds]
    verdict = "meets" if makespan / bound <= GOAL_RATIO else "MISSES"
    print(f"{label}: makespan {makespan:.2f} s = {makespan / bound:.3f} x bound ({verdict} "
          f"<= {GOAL_RATIO}); busy span {busy:.2f} s = {busy / bound:.3f} x; "
          f"runs: {', '.join(f'{s.makespan_seconds:.2f}' for s in samples)}")
    print(f"  dispatch per case: median {ms(dispatch):.2f} ms, p95 {ms(dispatch, 0.95):.2f} ms;"
          f" gap between cases on a host: median {ms(gap):.2f} ms, p95 {ms(gap, 0.95):.2f} ms"
          f" ({samples[0].attempts} attempts per run)")
    wall = statistics.median(s.wall_seconds for s in samples)
    print(f"  end to end (start_run: connections, agents, facts, plan, record, execute): "
          f"{wall:.2f} s = {wall / bound:.3f} x bound")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-steal-too", action="store_true",
                        help="also run with work stealing off (the static plan only)")
    args = parser.parse_args()
    hosts = [f"lab{i}" for i in range(1, HOSTS + 1)]
    bound, longest, work = lower_bound(hosts)
    print(f"{HOSTS} hosts; total work {work:.1f} s, longest job {longest:.1f} s, "
          f"lower bound {bound:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        state_dir = Path(tmp) / "lab"
        state = lab_up(HOSTS, state_dir)
        assert [h.name for h in state.hosts] == hosts
        suite = Path(tmp) / "makespan.yml"
        suite.write_text(suite_text())
        try:
            configs = [("steal on ", True)] + ([("steal off", False)] if args.no_steal_too
                                               else [])
            for label, steal in configs:
                samples = [one_run(state.inventory_path, Path(tmp) / "fleet.sqlite", suite,
                                   seed, steal) for seed in range(1, args.repeat + 1)]
                report(label, samples, bound)
        finally:
            lab_down(state_dir)


if __name__ == "__main__":
    main()
