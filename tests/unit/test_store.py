"""The SQLite store: schema, migrations, WAL, atomic writes, no secrets."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from fleet.errors import StoreError
from fleet.hosts import Host, Secret
from fleet.model import (
    CpuInfo,
    Facts,
    HugePagePool,
    IommuGroup,
    IommuInfo,
    KvmInfo,
    KvmModule,
    NumaNode,
    Topology,
)
from fleet.store import SCHEMA_VERSION, Store


def make_facts(host: str = "h1", at: float = 1000.0) -> Facts:
    nodes = (
        NumaNode(0, (0, 1), 8 << 30, 4 << 30, (10, 21),
                 (HugePagePool(2 << 20, 16, 16, 0),), sec_page_tables_bytes=None),
        NumaNode(1, (2, 3), 8 << 30, None, (21, 10), ()),
    )
    return Facts(
        host=host, collected_at_unix_seconds=at, hostname=host, kernel_release="6.1.0",
        kernel_cmdline="quiet", cpu=CpuInfo("AuthenticAMD", "EPYC", "0x830107a", 4, ("svm",)),
        topology=Topology(nodes, (0, 1)), mem_total_bytes=16 << 30,
        hugepages=(HugePagePool(2 << 20, 16, 16, None),), thp_enabled="madvise",
        thp_defrag=None, numa_balancing=1,
        kvm=KvmInfo(True, (KvmModule("kvm", (("tdp_mmu", "Y"),)),)),
        iommu=IommuInfo(True, (IommuGroup(3, ("0000:00:03.0",)),)), fingerprint="abc123",
        probe_seconds=0.2, warnings=("w",))


def host(name: str = "h1") -> Host:
    return Host(name=name, address="198.18.0.2", user="root", password=Secret("hunter2"))


def test_new_store_is_at_current_schema_in_wal(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.sqlite") as store:
        info = store.info()
    assert info.schema_version == SCHEMA_VERSION >= 1
    assert info.journal_mode == "wal"
    assert (info.host_count, info.snapshot_count) == (0, 0)


def test_snapshot_round_trips_exactly_including_missing_values(tmp_path: Path) -> None:
    facts = make_facts()
    with Store.open(tmp_path / "s.sqlite") as store:
        store.save_snapshots([host()], [facts])
    with Store.open(tmp_path / "s.sqlite") as store:
        (snap,) = store.latest_snapshots()
    assert snap.facts == facts
    assert snap.facts.topology.nodes[1].mem_free_bytes is None  # missing stays missing


def test_latest_snapshot_per_host(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.sqlite") as store:
        store.save_snapshots([host("a"), host("b")], [make_facts("a", 1.0), make_facts("b", 2.0)])
        store.save_snapshots([host("a")], [replace(make_facts("a", 3.0), fingerprint="new")])
        latest = {s.host: s for s in store.latest_snapshots()}
        assert store.info().snapshot_count == 3
    assert latest["a"].fingerprint == "new"
    assert latest["b"].collected_at_unix_seconds == 2.0


def test_secret_never_reaches_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store.open(path) as store:
        store.save_snapshots([host()], [make_facts()])
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"hunter2" not in raw


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.sqlite") as store:
        with pytest.raises(KeyError):  # second facts has no matching host: whole batch rolls back
            store.save_snapshots([host("a")], [make_facts("a"), make_facts("zz")])
        assert store.info().snapshot_count == 0
        assert store.info().host_count == 0


def test_store_newer_than_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this fleet knows"):
        Store.open(path)


def test_not_a_database_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError) as info:
        Store.open(path)
    assert str(path) in info.value.line()
    assert "\n" not in info.value.line()


def test_migration_from_empty_file_applies_all(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    sqlite3.connect(path).close()
    with Store.open(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        tables = {r[0] for r in store._conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"hosts", "facts_snapshots"} <= tables
