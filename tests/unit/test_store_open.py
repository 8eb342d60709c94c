"""Read commands never write; write commands never touch a file that is not a fleet store.

A fleet store carries SQLite's application_id; stores made before it are recognised by their
schema version and tables, read as they are, and stamped on their next write open.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.errors import StoreError
from fleet.store import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, Store

READ_COMMANDS = (["runs"], ["runs", "--json"], ["show", "r1"], ["store", "info"],
                 ["compare", "r1", "r2"], ["report", "r1", "-o", "/nonexistent/r.html"],
                 ["history", "--metric", "elapsed"], ["export", "text"])


def app_id(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA application_id").fetchone()[0])


def foreign_db(path: Path, *, runs_table: bool = False) -> bytes:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('ada')")
    if runs_table:
        conn.execute("CREATE TABLE runs (x)")
    conn.commit()
    conn.close()
    return path.read_bytes()


def legacy_store(path: Path, version: int) -> None:
    """A fleet store as an older fleet left it: migrated to ``version``, no application id."""
    conn = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:version]:
        conn.executescript(script)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.close()


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_new_store_carries_the_application_id(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "s.sqlite"
    Store.open(path).close()
    assert app_id(path) == APPLICATION_ID
    with Store.open_read(path) as store:
        assert store.schema_version() == SCHEMA_VERSION


@pytest.mark.parametrize("argv", READ_COMMANDS, ids=" ".join)
def test_read_commands_refuse_a_missing_store_and_create_nothing(
        argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "typo" / "fleet.sqlite"
    assert main([*argv, "--store", str(missing)]) == 2
    line = one_error(capsys)
    assert f"no fleet store at {missing}" in line or "no store at" in line, line
    assert not missing.parent.exists()


@pytest.mark.parametrize("argv", READ_COMMANDS, ids=" ".join)
def test_read_commands_refuse_a_foreign_database_and_leave_its_bytes(
        argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "shop.sqlite"
    before = foreign_db(path)
    assert main([*argv, "--store", str(path)]) == 2
    assert "not a fleet store" in one_error(capsys)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop.sqlite"]  # no -wal, no -shm


def test_read_refuses_a_file_that_is_not_sqlite_and_an_empty_one(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"no database here\n" * 64)
    with pytest.raises(StoreError, match="not a readable fleet store"):
        Store.open_read(junk)
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    with pytest.raises(StoreError, match="not a fleet store"):
        Store.open_read(empty)
    assert empty.read_bytes() == b""
    with pytest.raises(StoreError, match="not a fleet store"):
        Store.open_read(tmp_path)  # a directory


@pytest.mark.parametrize("runs_table", [False, True])
def test_write_open_refuses_a_foreign_database(tmp_path: Path, runs_table: bool) -> None:
    path = tmp_path / "shop.sqlite"
    before = foreign_db(path, runs_table=runs_table)
    with pytest.raises(StoreError, match="not a fleet store") as caught:
        Store.open(path)
    assert "\n" not in caught.value.line() and str(path) in caught.value.line()
    assert path.read_bytes() == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_resume_of_a_missing_store_creates_nothing(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "typo" / "fleet.sqlite"
    assert main(["run", "--resume", "r1", "--store", str(missing)]) == 2
    assert f"no fleet store at {missing}" in one_error(capsys)
    assert not missing.parent.exists()


def test_write_open_creates_a_store_in_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    path.touch()
    Store.open(path).close()
    assert app_id(path) == APPLICATION_ID


def test_a_current_store_without_the_id_is_read_as_is_and_stamped_on_write(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "old.sqlite"
    legacy_store(path, SCHEMA_VERSION)
    before = path.read_bytes()
    assert main(["runs", "--json", "--store", str(path)]) == 0
    assert '"runs": []' in capsys.readouterr().out
    assert path.read_bytes() == before and app_id(path) == 0
    Store.open(path).close()
    assert app_id(path) == APPLICATION_ID


def test_an_older_store_is_read_by_nobody_until_a_write_migrates_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "old.sqlite"
    legacy_store(path, SCHEMA_VERSION - 1)
    before = path.read_bytes()
    assert main(["runs", "--store", str(path)]) == 2
    line = one_error(capsys)
    assert "older than this fleet reads" in line and "fleet facts --store" in line
    assert path.read_bytes() == before
    with Store.open(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
    assert app_id(path) == APPLICATION_ID
    assert main(["runs", "--store", str(path)]) == 0


def test_a_newer_store_is_refused_by_readers_too(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    Store.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this fleet knows"):
        Store.open_read(path)
