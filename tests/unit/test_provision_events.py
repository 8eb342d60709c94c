"""Runner events -> TaskEvents and recaps, on events captured from a real ansible-runner run
of playbooks/host.yml (lab1 in state, lab2 a sysctl the kernel refuses, ghost unreachable)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fleet.provision.ansible import TaskEvent, _Collector, task_event

EVENTS = Path(__file__).resolve().parent.parent / "data" / "provision" / "runner_events.json"


def _events() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(EVENTS.read_text())
    return data


def _tasks() -> list[TaskEvent]:
    found = [task_event(e["event"], e["event_data"]) for e in _events()]
    return [t for t in found if t is not None]


def test_a_refused_sysctl_names_the_kernel_refusal_not_the_return_code() -> None:
    failed = [t for t in _tasks() if t.host == "lab2" and t.status == "failed"]
    assert failed and failed[0].task == "Set runtime sysctls" and failed[0].role == "sysctl"
    assert failed[0].message is not None
    assert "the kernel refused -5" in failed[0].message
    # the loop's summary event carries the item's message too, not "One or more items failed"
    assert all("One or more items" not in (t.message or "") for t in failed)


def test_an_unreachable_host_says_why() -> None:
    ghost = [t for t in _tasks() if t.host == "ghost" and t.status in ("failed", "unreachable")]
    assert ghost
    assert all("Connection refused" in (t.message or "") for t in ghost)


def test_ok_and_skipped_have_no_message() -> None:
    quiet = [t for t in _tasks() if t.status in ("ok", "skipped")]
    assert quiet and all(t.message is None for t in quiet)


def test_recaps_follow_the_stats_and_keep_the_first_failure() -> None:
    collector = _Collector(None)
    for e in _events():
        collector.event(e)
    recaps = {r.host: r for r in collector.recaps()}
    assert set(recaps) == {"lab1", "lab2", "ghost"}
    assert recaps["lab1"].succeeded and recaps["lab1"].failed_task is None
    assert recaps["lab2"].failed == 1 and recaps["lab2"].failed_task == "Set runtime sysctls"
    assert recaps["ghost"].unreachable == 1 and not recaps["ghost"].succeeded
    assert "Connection refused" in (recaps["ghost"].message or "")


def test_events_that_are_not_task_results_are_ignored() -> None:
    assert task_event("playbook_on_stats", {"host": "lab1"}) is None
    assert task_event("runner_on_ok", {}) is None
