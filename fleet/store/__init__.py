"""The store, and the only SQL in fleet: ``db`` (Store: opening, read-only opens, migrations,
facts snapshots), ``schema`` (the migrations), ``runs`` (run records: create, load, attempts,
tags), ``owner`` (a run's live controller and the jobs it has claimed), and the reads of
other stages: ``report_reads`` (plans, facts behind fingerprints), ``history_reads`` and
``export_reads``. Nothing outside this package speaks SQL or imports sqlite3."""

from fleet.store.db import DatabaseError, OperationalError, Store, StoredSnapshot, StoreInfo
from fleet.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

__all__ = ["APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION", "DatabaseError",
           "OperationalError", "Store", "StoreInfo", "StoredSnapshot"]
