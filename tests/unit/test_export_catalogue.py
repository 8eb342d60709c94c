"""The metric catalogue: names, units, lookups, and the series budget it promises."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from fleet import catalogue as cat
from fleet.export.prometheus import Selection, StoreCollector
from fleet.export.store_reader import open_read_only
from fleet.store import Store

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"fleet_[a-z][a-z0-9_]*")

# the sampler's stored names and units (fleet/sampling/derive.py): every one must be catalogued
SAMPLER_STORED = {
    ("tlb_shootdowns_per_second", "per_second"), ("kvm_remote_tlb_flushes_per_second",
                                                  "per_second"),
    ("numa_hint_faults_per_second", "per_second"), ("numa_pages_migrated_per_second",
                                                    "per_second"),
    ("sec_page_tables_growth_bytes", "bytes"), ("page_table_locality", "ratio"),
    ("sec_page_tables_bytes_per_gib", "ratio"), ("placement_ratio", "ratio"),
    ("sampler_samples", "count"), ("sampler_interval_seconds", "seconds"),
    ("sampler_max_gap_seconds", "seconds"), ("kernel_log_problems", "count"),
    ("sampler_agent_cpu_ratio", "ratio"),
}


def load_benchmark() -> ModuleType:
    """benchmarks/perf/exporter_scrape.py writes the synthetic stores (shared with tests)."""
    name = "exporter_scrape"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, ROOT / "benchmarks" / "perf" / "exporter_scrape.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_names_are_unique_and_follow_prometheus_conventions() -> None:
    names = [e.name for e in cat.EVERY]  # exported and imported (host samples) families
    assert len(names) == len(set(names)) and len(cat.HOST_SAMPLES) > 0
    for entry in cat.EVERY:
        assert NAME.fullmatch(entry.name), entry.name
        assert entry.name.endswith("_total") == (entry.type == "counter"), entry.name
        suffix = {"seconds": "_seconds", "bytes": "_bytes", "ratio": "_ratio",
                  "per_second": "_per_second", "info": "_info"}.get(entry.unit)
        if suffix is not None:  # a counter's unit comes before its _total
            assert entry.name.removesuffix("_total").endswith(suffix), entry.name
        assert entry.help and entry.direction in ("lower_is_better", "higher_is_better",
                                                  "neutral")


def test_every_sampler_metric_is_catalogued_and_looked_up_by_stored_name_and_unit() -> None:
    assert {e.stored for e in cat.SAMPLER} == SAMPLER_STORED
    sampler = (("source", "sampler"),)
    assert cat.lookup("page_table_locality", "ratio", sampler).name == \
        "fleet_page_table_locality_ratio"
    assert cat.lookup("sec_page_tables_growth_bytes", "bytes",
                      (("node", "1"), *sampler)).name == "fleet_secondary_page_tables_growth_bytes"
    assert cat.lookup("tlb_shootdowns_per_second", "per_second", sampler).optional_labels == \
        ("node",)
    # the same name from a workload (no source label), or another unit: a workload result
    assert cat.lookup("placement_ratio", "ratio") is cat.WORKLOAD_RESULT
    assert cat.lookup("placement_ratio", "percent", sampler) is cat.WORKLOAD_RESULT


@pytest.mark.parametrize(("value", "unit", "expected"), [
    (12.5, "ms", (0.0125, "seconds")), (3.0, "MiB", (3 * 2.0 ** 20, "bytes")),
    (2.0, "GB/s", (2e9, "bytes_per_second")), (50.0, "percent", (0.5, "ratio")),
    (7.0, "seconds", (7.0, "seconds")), (16384.0, "records", (16384.0, "records")),
    (1.0, "Pages Moved", (1.0, "pages_moved")),
])
def test_units_are_normalised_to_base_units(value: float, unit: str,
                                            expected: tuple[float, str]) -> None:
    got = cat.normalise(value, unit)
    assert got[1] == expected[1]
    assert got[0] == pytest.approx(expected[0], rel=1e-15)


def test_metric_names_are_sanitised() -> None:
    assert cat.sanitise("dirty memory time") == "dirty_memory_time"
    assert cat.sanitise("Copied-Bytes/s") == "copied_bytes_s"
    assert cat.sanitise("99th percentile") == "_99th_percentile"
    assert cat.sanitise("  ") == "unnamed"
    assert len(cat.label_value("x" * 500)) == cat.MAX_LABEL_VALUE_CHARS


def test_budget_formula_matches_the_documented_number() -> None:
    budget = cat.series_budget(cases=1000, repetitions=1, hosts=3, nodes=2, workload_metrics=3)
    assert budget == 61_030
    assert "61,030 series" in (cat.__doc__ or "")


def test_a_1000_case_run_on_3_hosts_and_2_nodes_stays_within_the_budget(tmp_path: Path) -> None:
    bench = load_benchmark()
    path = tmp_path / "fleet.sqlite"
    with Store.open(path) as store:
        bench.write_synthetic_run(store, "r-budget", cases=1000, hosts=3, nodes=2)
    with open_read_only(path) as store:
        body = StoreCollector(store, Selection()).exposition().decode()
    series = [line for line in body.splitlines() if line and not line.startswith("#")]
    budget = cat.series_budget(cases=1000, repetitions=1, hosts=3, nodes=2, workload_metrics=3)
    assert len(series) <= budget
    # every result, case and count is there: only the 4 statuses no attempt had are absent
    assert len(series) == budget - 3 * 4
    assert len(set(series)) == len(series)


def test_direction_is_defined_once_in_the_catalogue() -> None:
    package = Path(cat.__file__).parent
    owners = sorted(path.relative_to(package).as_posix() for path in package.rglob("*.py")
                    for node in ast.parse(path.read_text()).body
                    if isinstance(node, (ast.Assign, ast.AnnAssign))
                    and any(isinstance(t, ast.Name) and t.id in {"Direction", "DIRECTIONS"}
                            for t in (node.targets if isinstance(node, ast.Assign)
                                      else [node.target])))
    assert owners == ["catalogue.py", "catalogue.py"]
