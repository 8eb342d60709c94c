"""The store, and the only SQL in fleet: ``db`` (Store: opening, read-only opens, migrations,
facts snapshots), ``schema`` (the migrations), ``runs`` (run records: create, load, attempts,
tags) and ``owner`` (a run's live controller and the jobs it has claimed)."""

from fleet.store.db import Store, StoredSnapshot, StoreInfo
from fleet.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

__all__ = ["APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION", "Store", "StoreInfo",
           "StoredSnapshot"]
