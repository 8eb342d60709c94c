"""The agent's sampler (fleet/agent/remote/sampler.py), run for real through LocalTransport.

A fake root (corpus /proc and /sys files) that the workload itself rewrites mid-run shows that
whole texts, changed lines and new lines all decode back to the files on disk; the real root
shows timing, the process tree and /dev/kmsg.
"""

from __future__ import annotations

import ast
import itertools
import shutil
import statistics
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from fleet.agent import AgentSession
from fleet.agent.protocol import SampleSpec
from fleet.agent.shipping import agent_source
from fleet.errors import TransportError
from fleet.hosts import Host
from fleet.sampling.collect import SampleCollector
from fleet.sampling.decode import SampleDecoder, Snapshot
from fleet.transport.local import LocalTransport

NODE = "sys/devices/system/node"


@pytest.fixture(scope="module")
def agent() -> Iterator[AgentSession]:
    transport = LocalTransport(Host(name="me", address="localhost", connection="local"))
    with AgentSession(transport, host_name="me") as session:
        yield session


def sampled(agent: AgentSession, argv: list[str], spec: SampleSpec,
            timeout: float = 20) -> tuple[list[Mapping[str, Any]], list[Snapshot]]:
    bodies: list[Mapping[str, Any]] = []
    outcome = agent.run(argv, timeout_seconds=timeout, sample=spec, on_sample=bodies.append)
    assert outcome.ok, outcome.stderr
    decoder = SampleDecoder()
    return bodies, [decoder.feed(b) for b in bodies]


@pytest.fixture
def fake_root(tmp_path: Path, corpus: Path, node_exporter_sys_root: Path) -> Path:
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    for name in ("vmstat", "interrupts"):
        shutil.copy(corpus / "node_exporter/fixtures/proc" / name, root / "proc" / name)
    shutil.copytree(node_exporter_sys_root / NODE, root / NODE, symlinks=True)
    (root / "sys/kernel/debug/kvm").mkdir(parents=True)
    (root / "sys/kernel/debug/kvm/remote_tlb_flush").write_text("5\n")
    return root


# The workload edits the fake host while it is sampled: +1000 TLB shootdowns on every CPU, a
# SecPageTables line on node 1 (the line count changes), 500 more KVM remote flushes.
EDIT = """\
import pathlib, re, sys, time
root = pathlib.Path(sys.argv[1])
time.sleep(0.35)
p = root / "proc/interrupts"
p.write_text(re.sub(r"^TLB:.*$", lambda m: "TLB:" + "".join(
    f" {int(n) + 1000:10d}" for n in m.group(0).split()[1:5]) + "   TLB shootdowns",
    p.read_text(), flags=re.M))
m = root / "sys/devices/system/node/node1/meminfo"
m.write_text(m.read_text() + "Node 1 SecPageTables:     2048 kB\\n")
(root / "sys/kernel/debug/kvm/remote_tlb_flush").write_text("505\\n")
time.sleep(0.35)
"""


def test_fake_root_texts_decode_to_the_files_and_changes_become_series(
        agent: AgentSession, fake_root: Path) -> None:
    spec = SampleSpec(0.1, kvm_stats=("remote_tlb_flush", "no_such_stat"), root=str(fake_root))
    bodies, snaps = sampled(agent, [sys.executable, "-c", EDIT, str(fake_root)], spec)
    first, last = snaps[0], snaps[-1]
    assert first.texts["interrupts"] != last.texts["interrupts"]
    for key, path in (("vmstat", "proc/vmstat"), ("interrupts", "proc/interrupts"),
                      ("node1/meminfo", f"{NODE}/node1/meminfo"),
                      ("node0/cpulist", f"{NODE}/node0/cpulist"),
                      ("kvm/remote_tlb_flush", "sys/kernel/debug/kvm/remote_tlb_flush")):
        assert last.texts[key] == (fake_root / path).read_text(), key
    assert last.texts["kvm/no_such_stat"] is None
    assert first.errors["kvm/no_such_stat"].startswith("ENOENT")
    assert "kmsg" in first.errors  # no dev/kmsg under the fake root
    assert isinstance(bodies[0]["files"]["vmstat"], str)  # whole, the first time
    changed = [b["files"]["interrupts"] for b in bodies[1:] if "interrupts" in b["files"]]
    assert len(changed) == 1 and isinstance(changed[0], list)  # then the changed line only
    assert all("vmstat" not in b["files"] for b in bodies[1:])  # unchanged: not sent
    assert last.final and not any(s.final for s in snaps[:-1])

    collector = SampleCollector()
    for body in bodies:
        collector(body)
    points = collector.result().points
    assert points[("tlb_shootdowns", ())][-1][2] == 4000
    assert points[("tlb_shootdowns", (("node", "0"),))][-1][2] == 2000
    assert points[("tlb_shootdowns", (("node", "1"),))][-1][2] == 2000
    assert [v for _, _, v in points[("kvm_remote_tlb_flush", ())]][::len(snaps) - 1] == [5, 505]
    assert points[("sec_page_tables_bytes", (("node", "1"),))][-1][2] == 2048 * 1024
    assert ("sec_page_tables_bytes", (("node", "0"),)) not in points  # never printed there


def test_real_root_keeps_the_interval_and_follows_the_process_tree(
        agent: AgentSession) -> None:
    child = ("import subprocess, sys, time; x = bytearray(8 << 20); "
             "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1.2)']); "
             "time.sleep(1.2); p.wait()")
    _, snaps = sampled(agent, [sys.executable, "-c", child], SampleSpec(0.1))
    periodic = [s.monotonic_seconds for s in snaps if not s.final]
    steps = [b - a for a, b in itertools.pairwise(periodic)]
    assert len(periodic) >= 11
    assert abs(statistics.median(steps) - 0.1) < 0.01 and max(steps) < 0.25
    assert snaps[-1].missed == 0
    assert abs(periodic[-1] - periodic[0] - 0.1 * (len(periodic) - 1)) < 0.05  # no drift
    trees = [s.pids for s in snaps if len(s.pids) == 2]
    assert trees, [s.pids for s in snaps]
    parent, grandchild = trees[0]
    middle = snaps[len(snaps) // 2]
    maps = middle.texts[f"pid/{parent}/numa_maps"]
    assert maps is not None and "anon=" in maps
    status = middle.texts[f"pid/{grandchild}/status"]
    assert status is not None and f"Pid:\t{grandchild}\n" in status
    cpu = [s.agent_cpu_seconds for s in snaps]
    assert cpu == sorted(cpu) and all(0 < s.sample_seconds < 0.1 for s in snaps)


def test_new_kernel_log_records_arrive_with_the_sample(agent: AgentSession) -> None:
    if not Path("/dev/kmsg").exists():
        pytest.fail("no /dev/kmsg on this machine")
    marker = "fleet-sampler-test-record"
    writer = f"import time; time.sleep(0.25); open('/dev/kmsg', 'w').write('<6>{marker}\\n')"
    _, snaps = sampled(agent, [sys.executable, "-c", writer + "; time.sleep(0.25)"],
                       SampleSpec(0.1))
    logged = "".join(s.kmsg for s in snaps)
    assert logged.count(marker) == 1 and "kmsg" not in snaps[0].errors
    assert marker not in snaps[0].kmsg  # only what was logged after sampling began


def test_a_bad_spec_is_refused_before_anything_runs(agent: AgentSession) -> None:
    with pytest.raises(TransportError, match=r"sample.interval_seconds must be a number >= 0.1"):
        agent.run(["true"], timeout_seconds=5, sample=SampleSpec(0.01),
                  on_sample=lambda body: None)
    assert agent.run(["true"], timeout_seconds=5).ok  # the session lives on


def test_an_unsampled_run_sends_no_samples_and_a_spawn_error_none(agent: AgentSession) -> None:
    bodies: list[Mapping[str, Any]] = []
    outcome = agent.run(["/nonexistent/program"], timeout_seconds=5, sample=SampleSpec(0.1),
                        on_sample=bodies.append)
    assert outcome.spawn_error is not None and bodies == []


def test_shipped_source_is_one_python_3_8_module() -> None:
    text = agent_source().decode("ascii")
    ast.parse(text, feature_version=(3, 8))
    assert text.count("from __future__ import annotations") == 1
    assert "class Sampler" in text and "def read_files" in text
