"""Suite files: the shipped suites load; every kind of bad input is one line at file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.config.suite import load_suite, parse_suite
from fleet.errors import ConfigError
from fleet.model import Requirements

REPO = Path(__file__).resolve().parents[2]
GIB = 1 << 30

HEAD = "schema_version: 1\nname: t\n"
SLEEP = HEAD + "workloads:\n  - name: s\n    type: sleep\n"
ECHO = HEAD + "workloads:\n  - name: e\n    type: command\n    argv: [echo, '{x}']\n"


def test_quickstart_suite() -> None:
    suite = load_suite(REPO / "benchmarks" / "quickstart.yml")
    assert suite.name == "quickstart"
    (entry,) = suite.entries
    assert [(a.name, a.kind, a.values) for a in entry.axes] == [
        ("block_size", "param", ("64K", "4M")), ("volume", "param", ("256M", "1G"))]
    assert entry.repetitions == 2 and entry.spread == "every"
    assert entry.timeout_seconds == 30.0 and entry.estimate_seconds == 1.0
    assert entry.requires == Requirements()
    assert entry.where.endswith("quickstart.yml:12")


def test_kvm_example_suite() -> None:
    suite = load_suite(REPO / "benchmarks" / "examples" / "kvm_dirty_log_perf.yml")
    (entry,) = suite.entries
    assert [(a.name, a.kind) for a in entry.axes] == [
        ("vcpus", "param"), ("backing", "param"), ("numa_balancing", "knob")]
    assert entry.knobs == (("thp", "madvise"),)
    assert entry.params == (("bytes_per_vcpu", "1G"), ("iterations", 3))
    assert entry.requires == Requirements(min_numa_nodes=2, kvm=True)
    assert [c.requires for c in entry.requires_when] == [
        Requirements(hugepages_1g=True, min_memory_bytes=128 * GIB), Requirements(min_cpus=96)]
    assert [r.assignment for r in entry.exclude] == [
        (("backing", "anonymous_hugetlb_1gb"), ("numa_balancing", 1))]


def test_variants_knobs_and_entry_overrides() -> None:
    suite = parse_suite(SLEEP + (
        "    params: {seconds: 1}\n    variant: {kernel_cmdline: 'mitigations=off'}\n"
        "    axes:\n      kernel: [6.1.0-13-amd64, 6.8.0-mglru]\n      kvm.tdp_mmu: [Y, N]\n"
        "      thp: [never, always]\n"
        "    repetitions: 3\n    spread: any\n    timeout_seconds: 5\n"
        "    requires: {groups: [numa], min_memory_gib: 0.5}\n"), source="v.yml")
    (entry,) = suite.entries
    assert [(a.name, a.kind) for a in entry.axes] == [
        ("kernel", "variant"), ("kvm.tdp_mmu", "variant"), ("thp", "knob")]
    assert entry.variant == (("kernel_cmdline", "mitigations=off"),)
    assert entry.params == (("seconds", 1.0),)  # an int given for a float: canonical float
    assert (entry.repetitions, entry.spread, entry.timeout_seconds) == (3, "any", 5.0)
    assert entry.requires == Requirements(groups=("numa",), min_memory_bytes=GIB // 2)


def test_yaml_anchors_and_merge_keys_work() -> None:
    text = HEAD + (
        "workloads:\n  - &one\n    name: a\n    type: sleep\n    params: {seconds: 1}\n"
        "  - <<: *one\n    name: b\n")
    suite = parse_suite(text, source="m.yml")
    assert [e.name for e in suite.entries] == ["a", "b"]
    assert suite.entries[1].params == (("seconds", 1.0),)


def test_suite_level_requires_merge_with_entry_requires() -> None:
    text = HEAD + ("requires: {kvm: true, min_numa_nodes: 2, groups: [lab]}\n"
                   "workloads:\n  - name: s\n    type: sleep\n    params: {seconds: 1}\n"
                   "    requires: {min_numa_nodes: 4, iommu: true, groups: [epyc, lab]}\n")
    (entry,) = parse_suite(text, source="r.yml").entries
    assert entry.requires == Requirements(min_numa_nodes=4, kvm=True, iommu=True,
                                          groups=("lab", "epyc"))


BAD = [
    ("", 1 - 1, "the suite file is empty"),
    ("schema_version: 1\nname: [x\n", 3, "not valid YAML"),
    ("- 1\n", 1, "the suite must be a mapping"),
    (HEAD + "workloads: []\nextra: 1\n", 4, "unknown key 'extra' in the suite"),
    ("schema_version: 2\nname: t\nworkloads: []\n", 1, "schema_version 2 is not supported"),
    ("name: t\nworkloads: []\n", 1, "the suite lacks 'schema_version'"),
    (HEAD + "name: u\nworkloads: []\n", 3, "duplicate key 'name'"),
    ("schema_version: 1\nname: 'a b'\nworkloads: [{name: s, type: sleep, "
     "params: {seconds: 1}}]\n", 2, "suite name 'a b' has characters"),
    (HEAD + "workloads: []\n", 3, "workloads is empty"),
    (HEAD + "workloads:\n  - name: s\n    type: stress\n", 5, "unknown workload type 'stress'"),
    (HEAD + "workloads:\n  - name: s\n", 4, "a workload entry lacks 'type'"),
    (SLEEP + "    params: {seconds: 1}\n    tags: [x]\n", 7, "unknown key 'tags' in a workload"),
    (SLEEP, 4, "workload sleep needs parameter 'seconds'"),
    (SLEEP + "    params: {seconds: -1}\n", 6, "seconds must be >= 0"),
    (SLEEP + "    params: {seconds: fast}\n", 6, "seconds must be float, not str 'fast'"),
    (SLEEP + "    params: {seconds: null}\n", 6, "must be a string, number or boolean, not null"),
    (SLEEP + "    params: {seconds: 1, count: 3}\n", 6, "'count' is not a parameter of "
     "workload sleep (its parameters: seconds), a knob or a variant"),
    (SLEEP + "    params: {seconds: 1}\n    axes: {cpus: [1, 2]}\n", 7, "'cpus' is not a "
     "parameter"),
    (SLEEP + "    params: {seconds: 1}\n    axes: {thp: [never, sometimes]}\n", 7,
     "thp must be one of always, madvise, never, not 'sometimes'"),
    (SLEEP + "    params: {seconds: 1}\n    axes: {numa_balancing: ['0']}\n", 7,
     "numa_balancing must be int, not str '0'"),
    (SLEEP + "    params: {seconds: 1}\n    axes: {swappiness: [60, 201]}\n", 7,
     "swappiness must be <= 200"),
    (SLEEP + "    axes: {seconds: [1, 2, 1]}\n", 6, "axis seconds lists 1.0 twice"),
    (SLEEP + "    axes: {seconds: []}\n", 6, "axis seconds is empty"),
    (SLEEP + "    axes: {seconds: 5}\n", 6, "axis seconds must be a list"),
    (SLEEP + "    params: {seconds: 1}\n    axes: {seconds: [2]}\n", 6,
     "'seconds' is both fixed under params and an axis"),
    (SLEEP + "    params: {seconds: 1, thp: never}\n", 6, "'thp' is a knob, not one of params"),
    (SLEEP + "    params: {seconds: 1}\n    knobs: {kernel: x}\n", 7,
     "'kernel' is a variant, not one of knobs"),
    (SLEEP + "    axes: {seconds: [1]}\n    include: [{cpus: 2, seconds: 1}]\n", 7,
     "include names 'cpus', which is not an axis"),
    (SLEEP + "    axes: {seconds: [1], thp: [never]}\n    include: [{seconds: 3}]\n", 7,
     "include lacks axes thp"),
    (SLEEP + "    axes: {seconds: [1]}\n    exclude:\n      - {seconds: 1}\n      - {cpu: 1}\n",
     9, "exclude names 'cpu', which is not an axis"),
    (SLEEP + "    axes: {seconds: [1]}\n    exclude: [{}]\n", 7, "an empty exclude rule"),
    (SLEEP + "    params: {seconds: 1}\n    repetitions: 0\n", 7, "repetitions must be >= 1"),
    (SLEEP + "    params: {seconds: 1}\n    timeout_seconds: 0\n", 7, "timeout_seconds must "
     "be > 0"),
    (SLEEP + "    params: {seconds: 1}\n    spread: all\n", 7, "spread must be every or any"),
    (SLEEP + "    params: {seconds: 1}\n    requires: {numa: 2}\n", 7,
     "unknown key 'numa' in requires"),
    (SLEEP + "    params: {seconds: 1}\n    requires: {kvm: yes please}\n", 7,
     "kvm must be true or false"),
    (SLEEP + "    params: {seconds: 1}\n    requires: {min_numa_nodes: 0}\n", 7,
     "min_numa_nodes must be >= 1"),
    (HEAD + "requires: {hosts: [a*]}\nworkloads:\n  - name: s\n    type: sleep\n"
     "    params: {seconds: 1}\n    requires: {hosts: [b*]}\n", 8,
     "hosts is already required at t.yml:3"),
    (SLEEP + "    axes: {seconds: [1]}\n    requires_when:\n      - match: {seconds: 1}\n"
     "        requires: {hosts: [x]}\n", 9, "unknown key 'hosts' in requires"),
    (SLEEP + "    axes: {seconds: [1]}\n    requires_when:\n      - match: {cpus: 1}\n"
     "        requires: {kvm: true}\n", 8, "requires_when match names 'cpus'"),
    (HEAD + "workloads:\n  - {name: a, type: sleep, params: {seconds: 1}}\n"
     "  - {name: a, type: sleep, params: {seconds: 2}}\n", 5,
     "workload name 'a' is used twice (first at t.yml:4)"),
    (ECHO.replace("'{x}'", "'{x'"), 6, "bad placeholder: stray '{'"),
    (ECHO.replace("argv: [echo, '{x}']", "argv: []"), 6, "argv is empty"),
    (ECHO.replace("    argv: [echo, '{x}']\n", ""), 4, "a command workload needs 'argv'"),
    (ECHO + "    params: {x: 1}\n    parse: {patterns: ['(?P<a>\\d+)'], metrics: {}}\n", 8,
     "parse.metrics is empty"),
    (ECHO + "    params: {x: 1}\n    parse:\n      patterns: ['(?P<a>\\d+) (?P<b>\\d+)']\n"
     "      metrics: {a: {unit: s}}\n", 9, "pattern group 'b' is neither a metric nor a label"),
    (ECHO + "    params: {x: 1}\n    parse:\n      patterns: ['(?P<a>\\d+']\n"
     "      metrics: {a: {unit: s}}\n", 9, "bad regex"),
    (ECHO + "    params: {x: 1}\n    parse:\n      patterns: ['(?P<a>\\d+)']\n"
     "      metrics: {a: {}}\n", 10, "metric a lacks 'unit'"),
    (ECHO + "    params: {x: 1}\n    parse:\n      patterns: ['(?P<a>\\d+)']\n"
     "      metrics: {a: {unit: s}, b: {unit: s}}\n", 9, "'b' is no named group"),
    (ECHO + "    params: {x: 1}\n    parse:\n      format: json\n"
     "      metrics: {a: {unit: s}}\n", 10, "metric a lacks 'path'"),
    (ECHO + "    params: {x: 1}\n    parse:\n      format: xml\n"
     "      metrics: {a: {unit: s}}\n", 9, "parse.format must be regex or json"),
    (ECHO + "    params: {x: 1}\n    parse:\n      patterns: ['(?P<A>\\d+)']\n"
     "      metrics: {A: {unit: s}}\n", 10, "metric name 'A' is not"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD,
                         ids=[m.split(",")[0][:40] for _, _, m in BAD])
def test_bad_suite_is_one_line_at_file_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_suite(text, source="t.yml")
    error = info.value
    assert message in str(error)
    assert error.where == (f"t.yml:{line}" if line else "t.yml")
    assert "\n" not in str(error)
    assert error.hint, "every error says what to do"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read suite") as info:
        load_suite(tmp_path / "nope.yml")
    assert info.value.where == str(tmp_path / "nope.yml")


def test_errors_carry_a_hint() -> None:
    with pytest.raises(ConfigError) as info:
        parse_suite(SLEEP + "    params: {seconds: 1}\n    tags: [x]\n", source="t.yml")
    assert info.value.hint is not None and "known keys:" in info.value.hint
    with pytest.raises(ConfigError) as info:
        parse_suite(SLEEP + "    params: {seconds: 1}\n    axes: {cpus: [1]}\n", source="t.yml")
    assert info.value.hint is not None and "numa_balancing" in info.value.hint
