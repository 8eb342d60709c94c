"""`fleet run --pushgateway`: a real Pushgateway, scraped by a real Prometheus (honor_labels),
ends up with exactly the store's values; an unreachable gateway costs one warning, not the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prom_fixtures import Prometheus, free_port, poll, prometheus_on, pushgateway_on, quickstart_run

from fleet.catalogue import WORKLOAD_RESULT, lookup

PUSHED = ("fleet_workload_result", "fleet_tlb_shootdowns_per_second",
          "fleet_secondary_page_tables_growth_bytes", "fleet_sampler_samples")


def stored(shown: dict[str, Any]) -> dict[tuple[str, ...], float]:
    """(family, case_id, host, repetition, metric, node) -> value, completed attempts only."""
    want: dict[tuple[str, ...], float] = {}
    for a in shown["attempts"]:
        if a["status"] != "completed":
            continue
        for m in a["measurements"]:
            entry = lookup(m["metric"], m["unit"], tuple(sorted(m["labels"].items())))
            if m["value"] is None or entry.name not in PUSHED:
                continue
            metric = m["metric"] if entry is WORKLOAD_RESULT else ""
            want[(entry.name, a["case_id"], a["host"], str(a["repetition"]), metric,
                  m["labels"].get("node", ""))] = m["value"]
    return want


def read_back(prom: Prometheus, run_id: str) -> dict[tuple[str, ...], float]:
    got: dict[tuple[str, ...], float] = {}
    for family in PUSHED:
        for r in prom.query(f'{family}{{job="fleet",run_id="{run_id}"}}'):
            labels = r["metric"]
            got[(family, labels["case_id"], labels["host"], labels["repetition"],
                 labels.get("metric", ""), labels.get("node", ""))] = float(r["value"][1])
    return got


@pytest.mark.integration
def test_pushed_results_reach_prometheus_equal_to_the_store(tmp_path: Path) -> None:
    with pushgateway_on(tmp_path / "pushgateway") as gateway, \
            prometheus_on(tmp_path / "prometheus", gateway, honor_labels=True) as prom:
        shown = quickstart_run(tmp_path / "fleet.sqlite", "--pushgateway", f"http://{gateway}")
        run_id = shown["run"]["run_id"]
        completed = sum(1 for a in shown["attempts"] if a["status"] == "completed")
        assert completed == 8
        assert "warning" not in shown["_stderr"], shown["_stderr"]
        assert (f"fleet: pushgateway http://{gateway}: {completed} attempt(s) pushed ("
                in shown["_stderr"]), shown["_stderr"]
        assert ", 0 push(es) failed\n" in shown["_stderr"]
        want = stored(shown)
        assert sum(1 for k in want if k[0] == "fleet_workload_result") == 24

        def all_scraped() -> dict[tuple[str, ...], float] | None:
            got = read_back(prom, run_id)
            return got if set(got) >= set(want) else None

        got = poll("the pushed series in Prometheus", all_scraped)
        assert got == want  # exact: both sides are float64
        groups = prom.query(f'push_time_seconds{{job="fleet",run_id="{run_id}"}}')
        assert len(groups) == completed  # one group per attempt, none deleted
        print(f"{len(want)} pushed series equal the store's")


@pytest.mark.integration
def test_an_unreachable_gateway_warns_once_and_the_run_goes_on(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    shown = quickstart_run(tmp_path / "fleet.sqlite", "--pushgateway", url)
    err = shown["_stderr"]
    assert shown["run"]["status"] == "completed"
    assert sum(1 for a in shown["attempts"] if a["status"] == "completed") == 8
    warnings = [line for line in err.splitlines() if line.startswith("fleet: warning:")]
    assert len(warnings) == 1, err
    assert f"{url}: cannot push to the pushgateway" in warnings[0]
    assert err.splitlines()[-1] == (f"fleet: pushgateway {url}: 0 attempt(s) pushed (0 series),"
                                    " 8 push(es) failed")


@pytest.mark.integration
def test_basic_auth_from_url_user_and_env_password_never_shown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bcrypt

    secret = "s3cret-pw"
    config = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=4)).decode()
    config.write_text(f"basic_auth_users:\n  fleet: '{hashed}'\n")
    with pushgateway_on(tmp_path / "pushgateway", web_config=config) as gateway:
        monkeypatch.setenv("FLEET_PUSHGATEWAY_PASSWORD", secret)
        shown = quickstart_run(tmp_path / "ok.sqlite", "--pushgateway", f"http://fleet@{gateway}")
        err = shown["_stderr"]
        assert "warning" not in err, err
        assert f"fleet: pushgateway http://fleet:***@{gateway}: 8 attempt(s) pushed (" in err
        monkeypatch.delenv("FLEET_PUSHGATEWAY_PASSWORD")
        wrong = quickstart_run(tmp_path / "wrong.sqlite", "--pushgateway",
                               f"http://fleet:not-{secret}@{gateway}/")
    err = wrong["_stderr"]
    warnings = [line for line in err.splitlines() if line.startswith("fleet: warning:")]
    assert len(warnings) == 1, err
    assert f"http://{gateway}: pushgateway refused the results: HTTP 401" in warnings[0]
    assert f"pushgateway http://fleet:***@{gateway}: 0 attempt(s) pushed" in err
    for run in (shown, wrong):  # never in output, the store or its tags
        assert secret not in run["_stderr"]
        assert secret not in json.dumps({k: v for k, v in run.items() if k != "_stderr"})
