"""What does one benchmark case cost to dispatch through the host agent, next to a round trip?

Brings up a one-host lab (root; a network namespace with its own sshd) in a temp dir, starts
one fleet-agent over one SSH channel, and measures medians of N samples:
  (a) raw round trip   AgentSession.ping() on the open agent channel
  (b) dispatch         AgentSession.run(["true"]) minus the child's own wall time as the agent
                       measured it (fork to observed exit): what fleet adds per case
  (c) fresh exec       SshTransport.run(["true"]): a new SSH exec channel per command
(a) and (b) are interleaved so drift hits both alike. Goal: (b)/(a) <= 1.3.

    sudo .venv/bin/python benchmarks/perf/dispatch.py --repeat 500 --exec-repeat 50
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fleet.agent import AgentSession
from fleet.config.inventory import load_inventory
from fleet.lab import lab_down, lab_up
from fleet.transport.ssh import SshTransport

GOAL_RATIO = 1.3


def quantile_ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def measure(inventory_path: Path, repeat: int, exec_repeat: int, warmup: int) -> None:
    (host,) = load_inventory([inventory_path]).hosts
    with SshTransport(host) as ssh, AgentSession(ssh, host_name=host.name) as agent:
        assert agent.hello is not None
        for _ in range(warmup):
            agent.ping()
            agent.run(["true"], timeout_seconds=10)
            ssh.run(["true"])
        pings, dispatch, child = [], [], []
        for _ in range(repeat):
            pings.append(agent.ping())
            started = time.perf_counter()
            outcome = agent.run(["true"], timeout_seconds=10)
            elapsed = time.perf_counter() - started
            assert outcome.ok, outcome
            dispatch.append(elapsed - outcome.duration_seconds)
            child.append(outcome.duration_seconds)
        execs = []
        for _ in range(exec_repeat):
            started = time.perf_counter()
            assert ssh.run(["true"]).ok
            execs.append(time.perf_counter() - started)
        python = agent.hello.python_version
    a, b, c = (statistics.median(s) * 1000 for s in (pings, dispatch, execs))
    print(f"host {host.name} ({host.address}:{host.port}), agent on python {python}; "
          f"N={repeat} (exec N={exec_repeat})")
    print(f"(a) raw round trip, ping on the open channel: {a:8.3f} ms  "
          f"(p90 {quantile_ms(pings, 0.9):.3f})")
    print(f"(b) dispatch of run(['true']) minus child:    {b:8.3f} ms  "
          f"(p90 {quantile_ms(dispatch, 0.9):.3f}; "
          f"the child itself {statistics.median(child) * 1000:.3f})")
    print(f"(c) fresh SSH exec of true:                   {c:8.3f} ms  "
          f"(p90 {quantile_ms(execs, 0.9):.3f})")
    verdict = "meets" if b / a <= GOAL_RATIO else "MISSES"
    print(f"(b)/(a) = {b / a:.2f}  ({verdict} the goal <= {GOAL_RATIO}); (c)/(a) = {c / a:.0f}; "
          f"(c)/(b) = {c / b:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=500)
    parser.add_argument("--exec-repeat", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state_dir = Path(tmp) / "lab"
        state = lab_up(1, state_dir)
        try:
            measure(state.inventory_path, args.repeat, args.exec_repeat, args.warmup)
        finally:
            lab_down(state_dir)


if __name__ == "__main__":
    main()
