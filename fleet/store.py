"""The SQLite store: one file, WAL, a versioned schema with forward-only migrations.

Every write is one transaction (BEGIN IMMEDIATE ... COMMIT): a failure leaves nothing half-written.
Secrets are never stored: hosts are recorded by name, address, port, user and connection only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from fleet.codec import facts_from_json_data, facts_to_json_data
from fleet.errors import StoreError
from fleet.model import Facts, Host

# Each entry upgrades the schema by one version; never edit a released entry, append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE hosts (
        name TEXT PRIMARY KEY,
        address TEXT NOT NULL,
        port INTEGER NOT NULL,
        user_name TEXT,
        connection TEXT NOT NULL,
        first_seen_unix_seconds REAL NOT NULL,
        last_seen_unix_seconds REAL NOT NULL
    );
    CREATE TABLE facts_snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        host TEXT NOT NULL REFERENCES hosts(name),
        collected_at_unix_seconds REAL NOT NULL,
        fingerprint TEXT NOT NULL,
        format_version INTEGER NOT NULL,
        facts_json TEXT NOT NULL
    );
    CREATE INDEX facts_snapshots_host_time ON facts_snapshots(host, collected_at_unix_seconds);
    """,
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        suite TEXT NOT NULL,
        suite_path TEXT NOT NULL,
        suite_sha256 TEXT NOT NULL,
        suite_text TEXT NOT NULL,
        seed INTEGER NOT NULL,
        inventory_json TEXT NOT NULL,
        limit_pattern TEXT,
        fleet_version TEXT NOT NULL,
        created_at_unix_seconds REAL NOT NULL,
        finished_at_unix_seconds REAL,
        status TEXT NOT NULL,
        plan_json TEXT NOT NULL
    );
    CREATE TABLE run_cases (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        case_id TEXT NOT NULL,
        workload TEXT NOT NULL,
        params_json TEXT NOT NULL,
        PRIMARY KEY (run_id, case_id)
    );
    CREATE TABLE run_jobs (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        job_key TEXT NOT NULL,
        position INTEGER NOT NULL,
        PRIMARY KEY (run_id, job_key)
    );
    CREATE TABLE run_skips (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        case_id TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE TABLE attempts (
        attempt_id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        job_key TEXT NOT NULL,
        host TEXT NOT NULL,
        attempt_no INTEGER NOT NULL,
        status TEXT NOT NULL,
        started_at_unix_seconds REAL NOT NULL,
        ended_at_unix_seconds REAL NOT NULL,
        exit_code INTEGER,
        signal INTEGER,
        stdout TEXT NOT NULL,
        stderr TEXT NOT NULL,
        stdout_truncated INTEGER NOT NULL,
        stderr_truncated INTEGER NOT NULL,
        fingerprint TEXT,
        knobs_json TEXT NOT NULL,
        error TEXT
    );
    CREATE INDEX attempts_run ON attempts(run_id, job_key);
    CREATE TABLE results (
        attempt_id INTEGER NOT NULL REFERENCES attempts(attempt_id),
        metric TEXT NOT NULL,
        value REAL,
        unit TEXT NOT NULL,
        labels_json TEXT NOT NULL
    );
    CREATE INDEX results_attempt ON results(attempt_id);
    """,
    # 3: the sampler's series per attempt (fleet.sampling: at most 600 points per series and
    # attempt) and a free-text note per attempt (kernel log problems, unreadable inputs)
    """
    CREATE TABLE samples (
        attempt_id INTEGER NOT NULL REFERENCES attempts(attempt_id),
        series TEXT NOT NULL,
        labels_json TEXT NOT NULL,
        monotonic_seconds REAL NOT NULL,
        wall_unix_seconds REAL NOT NULL,
        value REAL
    );
    CREATE INDEX samples_attempt ON samples(attempt_id, series);
    ALTER TABLE attempts ADD COLUMN notes TEXT;
    """,
    # 4: run tags (fleet run --tag KEY=VALUE, plus date / git_sha / fleet_version), one value
    # per key and run; baselines and history select runs by them
    """
    CREATE TABLE run_tags (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run_id, key)
    );
    CREATE INDEX run_tags_key_value ON run_tags(key, value);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class StoredSnapshot:
    snapshot_id: int
    host: str
    collected_at_unix_seconds: float
    fingerprint: str
    facts: Facts


@dataclass(frozen=True)
class StoreInfo:
    path: str
    schema_version: int
    journal_mode: str
    host_count: int
    snapshot_count: int


class Store:
    """An open store. Use ``Store.open(path)`` as a context manager."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    @classmethod
    def open(cls, path: Path) -> Store:
        where = str(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open store: {exc}", where=where,
                             hint="pass a writable path with --store") from exc
        store = cls(path, conn)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            store._migrate()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"not a usable fleet store: {exc}", where=where,
                             hint="pass another file with --store") from exc
        except StoreError:
            conn.close()
            raise
        return store

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """For the store's record modules (fleet.store_runs); others use Store's methods."""
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; ROLLBACK on any exception."""
        with self._transaction() as conn:
            yield conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def schema_version(self) -> int:
        row = self._conn.execute("PRAGMA user_version").fetchone()
        return int(row[0])

    def _migrate(self) -> None:
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"store schema version {current} is newer than this fleet knows ({SCHEMA_VERSION})",
                where=str(self.path), hint="upgrade fleet, or use another --store")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            with self._transaction() as conn:
                for statement in _statements(MIGRATIONS[version - 1]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {int(version)}")

    def save_snapshots(self, hosts: Sequence[Host], facts: Sequence[Facts]) -> tuple[int, ...]:
        """Record hosts and their facts snapshots in one transaction; returns snapshot ids."""
        by_name = {h.name: h for h in hosts}
        ids: list[int] = []
        try:
            with self._transaction() as conn:
                for f in facts:
                    _upsert_host(conn, by_name[f.host], f.collected_at_unix_seconds)
                    data = facts_to_json_data(f)
                    cur = conn.execute(
                        "INSERT INTO facts_snapshots (host, collected_at_unix_seconds, fingerprint,"
                        " format_version, facts_json) VALUES (?, ?, ?, ?, ?)",
                        (f.host, f.collected_at_unix_seconds, f.fingerprint,
                         data["format_version"], json.dumps(data, sort_keys=True)))
                    ids.append(int(cur.lastrowid or 0))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write facts: {exc}", where=str(self.path),
                             hint="check the disk and file permissions; nothing was saved") from exc
        return tuple(ids)

    def latest_snapshots(self) -> tuple[StoredSnapshot, ...]:
        rows = self._conn.execute(
            "SELECT s.id, s.host, s.collected_at_unix_seconds, s.fingerprint, s.facts_json"
            " FROM facts_snapshots s JOIN (SELECT host, MAX(id) AS id FROM facts_snapshots"
            " GROUP BY host) latest ON latest.id = s.id ORDER BY s.host").fetchall()
        return tuple(
            StoredSnapshot(int(r[0]), str(r[1]), float(r[2]), str(r[3]),
                           facts_from_json_data(json.loads(r[4])))
            for r in rows)

    def info(self) -> StoreInfo:
        mode = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
        hosts = self._conn.execute("SELECT COUNT(*) FROM hosts").fetchone()[0]
        snaps = self._conn.execute("SELECT COUNT(*) FROM facts_snapshots").fetchone()[0]
        return StoreInfo(str(self.path), self.schema_version(), str(mode), int(hosts), int(snaps))


def _upsert_host(conn: sqlite3.Connection, host: Host, seen_unix_seconds: float) -> None:
    conn.execute(
        "INSERT INTO hosts (name, address, port, user_name, connection, first_seen_unix_seconds,"
        " last_seen_unix_seconds) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(name) DO UPDATE SET address = excluded.address, port = excluded.port,"
        " user_name = excluded.user_name, connection = excluded.connection,"
        " last_seen_unix_seconds = excluded.last_seen_unix_seconds",
        (host.name, host.address, host.port, host.user, host.connection,
         seen_unix_seconds, seen_unix_seconds))


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
