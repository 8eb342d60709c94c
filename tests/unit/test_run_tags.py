"""Run tags (schema 4): recording, filtering, baseline references, --tag parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.api.tags import default_tags, git_sha
from fleet.compare.tags import parse_tag, parse_tags
from fleet.errors import ConfigError, StoreError
from fleet.runs import RunInfo, RunStatus
from fleet.store import Store
from fleet.store.runs import create_run, resolve_ref, run_tags, runs_tagged, set_run_tags


def add_run(store: Store, run_id: str, created: float, status: RunStatus = "completed",
            suite: str = "s") -> None:
    info = RunInfo(run_id, suite, "s.yml", "0" * 64, 1, (), None, "0.1.0", created, None,
                   status)
    create_run(store, info, suite_text="", plan_json="{}", cases=[], jobs=[], skipped=[])


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "fleet.sqlite")
    add_run(s, "r1", 1.0)
    add_run(s, "r2", 2.0)
    add_run(s, "r3", 3.0, status="incomplete")
    add_run(s, "r4", 4.0, suite="other")
    set_run_tags(s, "r1", {"branch": "main", "kernel": "6.11"})
    set_run_tags(s, "r2", {"branch": "main", "kernel": "6.12"})
    set_run_tags(s, "r3", {"branch": "main"})
    set_run_tags(s, "r4", {"tag": "main"})
    return s


def test_tags_round_trip_and_replace(store: Store) -> None:
    set_run_tags(store, "r1", {"kernel": "6.11.1"})
    assert run_tags(store)["r1"] == {"branch": "main", "kernel": "6.11.1"}
    assert run_tags(store, ["r2"]) == {"r2": {"branch": "main", "kernel": "6.12"}}
    with pytest.raises(StoreError, match="no run 'nope'"):
        set_run_tags(store, "nope", {"a": "b"})


def test_filter_by_every_tag(store: Store) -> None:
    assert [r.run_id for r in runs_tagged(store, [("branch", "main")])] == ["r1", "r2", "r3"]
    assert [r.run_id for r in runs_tagged(store, [("branch", "main"), ("kernel", "6.12")])] \
        == ["r2"]
    assert [r.run_id for r in runs_tagged(store, [("branch", "main")],
                                          status="completed")] == ["r1", "r2"]


def test_resolve_ref(store: Store) -> None:
    assert resolve_ref(store, "r3").run_id == "r3"  # a run id: any status
    assert resolve_ref(store, "main").run_id == "r4"  # newest completed, branch= or tag=
    assert resolve_ref(store, "main", suite="s").run_id == "r2"  # r3 is not completed
    assert resolve_ref(store, "kernel=6.11").run_id == "r1"
    with pytest.raises(StoreError, match="tagged branch=dev or tag=dev"):
        resolve_ref(store, "dev")


def test_parse_tags_and_defaults(tmp_path: Path) -> None:
    assert parse_tag("branch=main") == ("branch", "main")
    assert parse_tag(" kernel = 6.12=rc1 ") == ("kernel", "6.12=rc1")
    for bad in ("branch", "=x", "1a=b", "a=", "a b=c"):
        with pytest.raises(ConfigError):
            parse_tag(bad)
    with pytest.raises(ConfigError, match="given twice"):
        parse_tags(["a=1", "a=2"])
    tags = default_tags(tmp_path / "suite.yml", now_unix_seconds=0.0)
    assert tags == {"date": "1970-01-01", "fleet_version": tags["fleet_version"]}
    repo_sha = git_sha(Path(__file__).parent)
    assert repo_sha is None or len(repo_sha) >= 7
    assert default_tags(Path(__file__)).get("git_sha") == repo_sha


def test_tags_are_written_with_the_run_and_not_without_it(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "fleet.sqlite")
    info = RunInfo("r1", "s", "s.yml", "0" * 64, 1, (), None, "0.1.0", 1.0, None, "running")
    create_run(store, info, suite_text="", plan_json="{}", cases=[], jobs=[], skipped=[],
               tags={"branch": "main", "date": "2026-12-03"})
    assert run_tags(store) == {"r1": {"branch": "main", "date": "2026-12-03"}}
    broken = RunInfo("r2", "s", "s.yml", "0" * 64, 1, (), None, "0.1.0", 2.0, None, "running")
    with pytest.raises(StoreError, match="run r2 cannot be recorded"):  # a case id twice
        create_run(store, broken, suite_text="", plan_json="{}",
                   cases=[("c1", "w", "{}"), ("c1", "w", "{}")], jobs=[], skipped=[],
                   tags={"branch": "main"})
    assert [r.run_id for r in runs_tagged(store, [("branch", "main")])] == ["r1"]
    assert "r2" not in run_tags(store)
