"""Round trip on this machine: run PROBE_SCRIPT with sh, parse, build, compare with /sys."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from fleet.facts.build import build_facts
from fleet.facts.probe import PROBE_SCRIPT
from fleet.facts.tree import FileTree, parse_dump, tree_from_root
from fleet.model import Facts

NODE = Path("/sys/devices/system/node")
VOLATILE = re.compile(r".*/(meminfo|numastat|cpuinfo|free_hugepages|surplus_hugepages)$")


@pytest.fixture(scope="module")
def local() -> tuple[FileTree, Facts, float]:
    started = time.perf_counter()
    done = subprocess.run(["sh", "-c", PROBE_SCRIPT], capture_output=True, timeout=60,
                          check=False)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0
    assert done.stderr == b""
    tree = parse_dump(done.stdout.decode("utf-8"), source="localhost")
    facts = build_facts("localhost", tree, collected_at_unix_seconds=time.time())
    return tree, facts, elapsed


def kib(path: Path, key: str) -> int:
    match = re.search(rf"{re.escape(key)}:\s+(\d+) kB", path.read_text())
    assert match is not None
    return int(match.group(1)) * 1024


def test_probe_is_fast(local: tuple[FileTree, Facts, float]) -> None:
    assert local[2] < 1.0  # measured here: ~10 ms; one fork per cat'ed file only


def test_topology_matches_sysfs(local: tuple[FileTree, Facts, float]) -> None:
    facts = local[1]
    ids = sorted(int(n[4:]) for n in os.listdir(NODE) if re.fullmatch(r"node\d+", n))
    assert facts.topology.node_ids == tuple(ids)
    for node in facts.topology.nodes:
        base = NODE / f"node{node.node_id}"
        cpus: set[int] = set()
        for part in base.joinpath("cpulist").read_text().strip().split(","):
            if part:
                low, _, high = part.partition("-")
                cpus.update(range(int(low), int(high or low) + 1))
        assert node.cpus == tuple(sorted(cpus))
        assert node.mem_total_bytes == kib(base / "meminfo", "MemTotal")
        distance = base.joinpath("distance").read_text()
        assert node.distances == tuple(int(x) for x in distance.split())
    assert facts.topology.cpu_count == os.cpu_count() == facts.cpu.logical_cpus
    packages = {int(p.read_text()) for p in
                Path("/sys/devices/system/cpu").glob("cpu[0-9]*/topology/physical_package_id")}
    assert set(facts.topology.socket_ids) == packages
    node_sum = sum(n.mem_total_bytes or 0 for n in facts.topology.nodes)
    assert facts.mem_total_bytes is not None
    gap = abs(facts.mem_total_bytes - node_sum) > 0.05 * facts.mem_total_bytes
    # the only warning this machine may earn is the real node-memory gap of its kernel
    assert [w for w in facts.warnings if "but MemTotal is" not in w] == []
    assert any("but MemTotal is" in w for w in facts.warnings) == gap


def test_system_values_match(local: tuple[FileTree, Facts, float]) -> None:
    facts = local[1]
    assert facts.kernel_release == os.uname().release
    assert facts.hostname == os.uname().nodename
    assert facts.mem_total_bytes == kib(Path("/proc/meminfo"), "MemTotal")
    assert facts.numa_balancing == int(Path("/proc/sys/kernel/numa_balancing").read_text())
    enabled = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    assert facts.thp_enabled == re.search(r"\[(\w+)\]", enabled).group(1)  # type: ignore[union-attr]
    assert facts.kvm.dev_kvm == os.path.exists("/dev/kvm")
    kvm_params = Path("/sys/module/kvm/parameters")
    if kvm_params.is_dir():
        (kvm,) = [m for m in facts.kvm.modules if m.name == "kvm"]
        assert [name for name, _ in kvm.parameters] == sorted(os.listdir(kvm_params))
    sizes = sorted(int(d.name[len("hugepages-"):-2]) * 1024
                   for d in Path("/sys/kernel/mm/hugepages").iterdir())
    assert [p.page_size_bytes for p in facts.hugepages] == sizes


def test_probe_reads_what_python_reads(local: tuple[FileTree, Facts, float]) -> None:
    """Every byte-wise read file equals a normal read (catches kernel files that need big reads)."""
    tree = local[0]
    direct = tree_from_root(Path("/"))
    assert tree.files.keys() == direct.files.keys()
    assert tree.missing - {"numactl -H"} == direct.missing
    assert tree.listings == direct.listings
    assert tree.modes == direct.modes  # `ls -ln` in the probe, stat() here
    if Path("/sys/module/kvm/parameters").is_dir():
        assert tree.modes
    for path, text in tree.files.items():
        if not VOLATILE.match(path):
            assert text == direct.files[path], path


def test_numactl_output_is_captured(local: tuple[FileTree, Facts, float]) -> None:
    tree = local[0]
    if shutil.which("numactl") is None:
        assert "numactl -H" in tree.missing
    else:
        output = tree.command("numactl -H")
        assert output is not None and output.startswith("available: ")
