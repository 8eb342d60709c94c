"""How much does a no-change `fleet provision` cost next to a no-change `ansible-playbook`?

Brings up a lab of N sshd hosts (root; network namespaces) and gives them host state to hold
(per-namespace sysctls, the THP settings in force, 2 MB hugepages on node 0 at their current
count, numactl installed: nothing outside the lab's namespaces changes), brings them into it
once, then times, interleaved (A B A B ...), whole processes:
  fleet      `python -m fleet provision -i INV -i VARS --no-store --json` (one probe per host,
             no Ansible when every host is in state)
  ansible    `ansible-playbook -i INV -i VARS playbooks/host.yml` with fleet's Ansible settings
             (pipelining, ControlPersist, forks = hosts)
and one run where only lab1's state differs (which hosts Ansible ran for, and its time); then
a real change on every host, interleaved (each run flips net.core.somaxconn on all hosts:
fleet probes, then runs the same playbook for all of them).
Prints medians in seconds and the ratio fleet/ansible.

    sudo .venv/bin/python benchmarks/perf/provision_nochange.py --hosts 8 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from fleet.lab import lab_down, lab_up
from fleet.provision.ansible import PLAYBOOKS_DIR, ansible_environment

THP = Path("/sys/kernel/mm/transparent_hugepage")
HUGEPAGES = Path("/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages")


def host_state(somaxconn_lab1: int, somaxconn: int = 1024) -> dict[str, object]:
    selected = {name: (THP / name).read_text().split("[", 1)[1].split("]", 1)[0]
                for name in ("enabled", "defrag")}
    return {"lab": {
        "vars": {"fleet_sysctl": {"net.core.somaxconn": somaxconn,
                                  "net.ipv4.tcp_fin_timeout": 31},
                 "fleet_thp": selected, "fleet_tools": ["numactl"],
                 "fleet_hugepages": [{"node": 0, "size_kb": 2048,
                                      "count": int(HUGEPAGES.read_text())}]},
        "hosts": {"lab1": {"fleet_sysctl": {"net.core.somaxconn": somaxconn_lab1,
                                            "net.ipv4.tcp_fin_timeout": 31}}},
    }}


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[:4]} exited {done.returncode}: {done.stderr.strip()[-400:]}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = lab_up(args.hosts, Path(tmp) / "lab")
        try:
            run(state.inventory_path, Path(tmp), args.repeat, args.hosts)
        finally:
            lab_down(Path(tmp) / "lab")


def run(inventory: Path, tmp: Path, repeat: int, hosts: int) -> None:
    variables = tmp / "vars.yml"
    variables.write_text(yaml.safe_dump(host_state(1024)))
    fleet = [sys.executable, "-m", "fleet", "provision", "-i", str(inventory), "-i",
             str(variables), "--no-store", "--json"]
    scratch = tmp / "ansible"
    (scratch / "cp").mkdir(parents=True)
    (scratch / "tmp").mkdir()
    env = {**os.environ, **ansible_environment(hosts, scratch)}
    ansible = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory),
               "-i", str(variables), str(PLAYBOOKS_DIR / "host.yml")]
    timed(fleet)  # into state, and warm
    timed(ansible, env)
    fleet_s, ansible_s, ratios = [], [], []
    for _ in range(repeat):
        a, out = timed(fleet)
        assert json.loads(out)["ansible_hosts"] == [], "not in state after the first run"
        b, _ = timed(ansible, env)
        fleet_s.append(a)
        ansible_s.append(b)
        ratios.append(a / b)
    print(f"{hosts} hosts, no change: fleet provision {statistics.median(fleet_s):.2f} s, "
          f"ansible-playbook {statistics.median(ansible_s):.2f} s, "
          f"fleet/ansible {statistics.median(ratios):.3f} (pairs: "
          f"{', '.join(f'{r:.3f}' for r in ratios)})")
    variables.write_text(yaml.safe_dump(host_state(1025)))
    seconds, out = timed(fleet)
    ran = json.loads(out)["ansible_hosts"]
    print(f"one host changed: fleet provision {seconds:.2f} s, Ansible ran for {ran}")
    all_changed(variables, fleet, ansible, env, repeat, hosts)
    load = os.getloadavg()[0]
    print(f"load average {load:.1f}")


def all_changed(variables: Path, fleet: list[str], ansible: list[str], env: dict[str, str],
                repeat: int, hosts: int) -> None:
    """Every host's state differs before each run: fleet and ansible-playbook alternate,
    each flipping net.core.somaxconn on all hosts (and on lab1, which has its own value)."""
    fleet_s: list[float] = []
    ansible_s: list[float] = []
    value = 2000
    for _ in range(repeat):
        for argv, env_, times in ((fleet, None, fleet_s), (ansible, env, ansible_s)):
            value += 1
            variables.write_text(yaml.safe_dump(host_state(value, value)))
            seconds, out = timed(argv, env_)
            if argv is fleet:
                assert len(json.loads(out)["ansible_hosts"]) == hosts, "not every host ran"
            times.append(seconds)
    f, a = statistics.median(fleet_s), statistics.median(ansible_s)
    print(f"{hosts} hosts, all changed: fleet provision {f:.2f} s, ansible-playbook {a:.2f} s, "
          f"fleet/ansible {f / a:.3f}")


if __name__ == "__main__":
    main()
