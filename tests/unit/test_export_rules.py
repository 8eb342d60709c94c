"""The recording rules generated from the catalogue (promtool and a real Prometheus check them
in tests/integration/test_export_rules.py)."""

from __future__ import annotations

import re

import pytest
import yaml

from fleet import catalogue as cat
from fleet.export.rules import DERIVED, recording_rules, rules_yaml, worst

RECORD = re.compile(r"^[a-z_]+:[a-z0-9_]+:(max|min|avg)$")


def test_the_rule_file_lists_every_recording_rule_once() -> None:
    doc = yaml.safe_load(rules_yaml())
    [group] = doc["groups"]
    records = [r["record"] for r in group["rules"]]
    assert records == [r.record for r in recording_rules()]
    assert len(set(records)) == len(records) == 10
    assert all(RECORD.match(r) for r in records), records


def test_worst_case_follows_the_catalogue_direction() -> None:
    exprs = {r.record: r.expr for r in recording_rules()}
    assert exprs["run_host:fleet_tlb_shootdowns_per_second:max"] == (
        'max by (run_id, suite, host) (fleet_tlb_shootdowns_per_second{node=""})')
    assert exprs["run_host_node:fleet_tlb_shootdowns_per_second:avg"] == (
        'avg by (run_id, suite, host, node) (fleet_tlb_shootdowns_per_second{node!=""})')
    assert exprs["run_host:fleet_placement_ratio:min"] == (
        "min by (run_id, suite, host) (fleet_placement_ratio)")
    assert "run_host:fleet_secondary_page_tables_bytes_per_gib:max" in exprs
    assert "run_host:fleet_page_table_locality_ratio:min" in exprs
    with pytest.raises(ValueError, match="no direction"):
        worst(cat.by_name("fleet_sampler_samples"))


def test_every_derived_family_is_a_catalogued_sampler_family() -> None:
    for name in DERIVED:
        entry = cat.by_name(name)
        assert entry.source == "sampler" and entry.direction != "neutral"
    with pytest.raises(KeyError):
        recording_rules(names=("fleet_no_such_family",))
