"""The SQLite store: one file, WAL, a versioned schema with forward-only migrations.

Every write is one transaction (BEGIN IMMEDIATE ... COMMIT): a failure leaves nothing half-written.
Secrets are never stored: hosts are recorded by name, address, port, user and connection only.

A fleet store carries SQLite's ``application_id`` (APPLICATION_ID). ``Store.open`` is for
commands that write: it creates a missing store (and its directory), migrates it, and stamps
the id on stores made before the id existed; it refuses any other non-empty file, so fleet
never adds its tables to someone else's database. ``Store.open_read`` is for commands that
only read: ``mode=ro``, no directory, no WAL switch, no migration; it refuses a missing file,
a file that is not a fleet store, and a schema older than the reader needs.
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
from fleet.hosts import Host
from fleet.model import Facts
from fleet.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

__all__ = ["APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION", "DatabaseError",
           "OperationalError", "Store", "StoreInfo", "StoredSnapshot"]

# SQLite's errors under the store's names, for callers that carry on after one (a busy store:
# OperationalError, "database is locked" after the busy timeout), so they need not import
# sqlite3: only fleet.store speaks SQLite
DatabaseError = sqlite3.Error
OperationalError = sqlite3.OperationalError

_FIRST_TABLES = frozenset({"hosts", "facts_snapshots"})  # what migration 1 creates


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
    def open(cls, path: Path, *, create: bool = True) -> Store:
        """For writing: create (``create``) or migrate a fleet store; refuse other files."""
        where = str(path)
        if not path.exists():
            if not create:
                raise _missing(path)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the store's directory: {exc.strerror}",
                                 where=where, hint="pass a writable path with --store") from None
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open store: {exc}", where=where,
                             hint="pass a writable path with --store") from exc
        store = cls(path, conn)
        try:
            if _kind(conn) == "foreign":
                raise _foreign(path)
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

    @classmethod
    def open_read(cls, path: Path, *, oldest: int = SCHEMA_VERSION,
                  any_thread: bool = False) -> Store:
        """For reading only (``mode=ro``): a fleet store of schema ``oldest`` or newer up to
        this fleet's. ``any_thread``: the connection may be used from any thread (one at a
        time)."""
        if not path.is_file():
            raise _missing(path) if not path.exists() else _foreign(path)
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                   isolation_level=None, timeout=30.0,
                                   check_same_thread=not any_thread)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open store: {exc}", where=str(path),
                             hint="check the path and its permissions") from exc
        store = cls(path, conn)
        try:
            store._check_readable(oldest)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"not a readable fleet store: {exc}", where=str(path),
                             hint="pass another file with --store") from exc
        except StoreError:
            conn.close()
            raise
        return store

    def _check_readable(self, oldest: int) -> None:
        if _kind(self._conn) not in ("fleet", "legacy"):
            raise _foreign(self.path)
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise _newer(self.path, version)
        if version < oldest:
            raise StoreError(
                f"store schema version {version} is older than this fleet reads ({oldest})",
                where=str(self.path),
                hint="any command that writes migrates it, e.g. `fleet facts --store "
                     f"{self.path}`; reading commands never change a store")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    @property
    def _connection(self) -> sqlite3.Connection:
        """For the store's own modules (fleet.store.*) only: nothing else speaks SQL."""
        return self._conn

    @contextmanager
    def read_snapshot(self) -> Iterator[None]:
        """One consistent view of the store for several reads (BEGIN ... COMMIT; a read
        transaction takes no write lock)."""
        self._conn.execute("BEGIN")
        try:
            yield
        finally:
            self._conn.execute("COMMIT")

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
        """Apply the missing migrations, each in its own transaction that re-reads the
        version (two writers opening a new store at once apply each migration once); stamp
        the application id on stores made before it existed."""
        while True:
            with self._transaction() as conn:
                current = self.schema_version()
                if current > SCHEMA_VERSION:
                    raise _newer(self.path, current)
                if int(conn.execute("PRAGMA application_id").fetchone()[0]) != APPLICATION_ID:
                    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                if current == SCHEMA_VERSION:
                    return
                for statement in _statements(MIGRATIONS[current]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {int(current + 1)}")

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


def _kind(conn: sqlite3.Connection) -> str:
    """fleet (our application id), legacy (a fleet store from before the id: migrated, with
    fleet's first tables), empty (a new database), or foreign (anything else)."""
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    if app_id == APPLICATION_ID:
        return "fleet"
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    names = {str(r[0]) for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}
    if app_id == 0 and version > 0 and names >= _FIRST_TABLES:
        return "legacy"
    if app_id == 0 and version == 0 and not names:
        return "empty"
    return "foreign"


def _missing(path: Path) -> StoreError:
    return StoreError(f"no fleet store at {path}",
                      hint="run `fleet facts` or `fleet run` first, or pass --store")


def _foreign(path: Path) -> StoreError:
    return StoreError("not a fleet store (another file or database; fleet never adds its "
                      "tables to it)", where=str(path),
                      hint="pass a fleet store, or a new path, with --store")


def _newer(path: Path, version: int) -> StoreError:
    return StoreError(
        f"store schema version {version} is newer than this fleet knows ({SCHEMA_VERSION})",
        where=str(path), hint="upgrade fleet, or use another --store")


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
