"""Hostile suite files: not UTF-8, deep nesting, merge-key bombs and cycles, huge axes, values
that read the same, too many jobs. Each is one ConfigError line at file:line, never a crash
(RecursionError, UnicodeDecodeError) or minutes of work."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from fleet.config.suite import load_suite, parse_suite
from fleet.errors import ConfigError
from fleet.plan.matrix import DEFAULT_MAX_JOBS, expand
from fleet.workloads import FAMILIES
from fleet.yamlnode import MAX_MERGE_DEPTH, MAX_NESTING_DEPTH, Node, compose

HEAD = "schema_version: 1\nname: t\n"
SLEEP = HEAD + "workloads:\n  - name: s\n    type: sleep\n"
ECHO = HEAD + "workloads:\n  - name: e\n    type: command\n    argv: [echo, '{x}']\n"


def one_line(error: ConfigError) -> str:
    line = str(error)
    assert "\n" not in line and error.hint
    return line


@pytest.mark.parametrize(("data", "line", "message"), [
    ("schema_version: 1\n".encode("utf-16"), 1, "the file is UTF-16 (it starts with a byte "
     "order mark), not UTF-8"),
    ("schema_version: 1\n".encode("utf-32"), 1, "the file is UTF-32"),
    (b"schema_version: 1\nname: caf\xe9\n", 2, "not UTF-8 text: byte 0xe9 at offset 27"),
    (bytes(range(256)), 2, "not UTF-8 text: byte 0x80 at offset 128"),
    (b"schema_version: 1\n\x00\x01\x02", 2, "not text: character #x0000"),
], ids=["utf16", "utf32", "latin1", "binary", "nul"])
def test_a_suite_that_is_not_utf8_text_is_one_line(tmp_path: Path, data: bytes, line: int,
                                                   message: str) -> None:
    path = tmp_path / "suite.yml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert message in one_line(info.value)
    assert info.value.where == f"{path}:{line}"


def test_a_utf8_byte_order_mark_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "suite.yml"
    path.write_bytes(b"\xef\xbb\xbf" + (SLEEP + "    params: {seconds: 1}\n").encode())
    assert load_suite(path).name == "t"


@pytest.mark.parametrize("text", [
    "x: " + "[" * 5000 + "]" * 5000,
    "x: " + "{a: " * 5000 + "1" + "}" * 5000,
    "".join(" " * i + f"k{i}:\n" for i in range(3000)),
], ids=["flow-lists", "flow-mappings", "block-mappings"])
def test_deep_nesting_is_refused_at_its_line_not_a_recursion_error(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_suite(text, source="t.yml")
    assert f"nested more than {MAX_NESTING_DEPTH} deep" in one_line(info.value)
    assert info.value.where is not None and info.value.where.startswith("t.yml:")


def test_nesting_up_to_the_limit_still_parses() -> None:
    depth = MAX_NESTING_DEPTH - 1  # the document's mapping is one level
    root = compose("x: " + "[" * depth + "]" * depth, "t.yml")
    assert root is not None


def merge_bomb(levels: int, width: int = 8) -> str:
    """Each workload entry merges the previous one ``width`` times: naive expansion costs
    width**levels (the audit's 485-byte file took 15.5 s at x8 per level)."""
    lines = [HEAD, "workloads:\n", "  - &a0 {name: s0, type: sleep, params: {seconds: 1}}\n"]
    for i in range(1, levels + 1):
        lines.append(f"  - &a{i} {{<<: [" + ", ".join([f"*a{i - 1}"] * width)
                     + f"], name: s{i}}}\n")
    return "".join(lines)


def test_merge_keys_are_expanded_once_per_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    original = Node._pairs

    def counted(self: Node, *args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Node, "_pairs", counted)
    suite = parse_suite(merge_bomb(6), source="bomb.yml")  # naive: 8**6 = 262,144 expansions
    assert [e.name for e in suite.entries] == [f"s{i}" for i in range(7)]
    assert all(e.params == (("seconds", 1.0),) for e in suite.entries)
    assert calls < 500, calls


def test_the_audit_merge_bomb_parses_at_once() -> None:
    started = time.monotonic()
    suite = parse_suite(merge_bomb(9), source="bomb.yml")  # 8**9 naive expansions
    assert len(suite.entries) == 10
    assert time.monotonic() - started < 20  # generous: it takes milliseconds


def chain(length: int) -> str:
    return "".join(f"a{i}: &a{i} {{<<: *a{i - 1}, k{i}: {i}}}\n" if i else "a0: &a0 {k0: 0}\n"
                   for i in range(length))


def test_a_long_merge_chain_is_refused_not_a_recursion_error() -> None:
    root = compose(chain(3000), "c.yml")
    assert root is not None
    last = Node(root, "c.yml").mapping("the file")["a2999"]
    with pytest.raises(ConfigError) as info:
        last.mapping("a2999")
    assert f"merge keys (<<) nested more than {MAX_MERGE_DEPTH} deep" in one_line(info.value)
    assert info.value.where is not None and info.value.where.startswith("c.yml:")


def test_a_short_merge_chain_merges_every_key() -> None:
    root = compose(chain(MAX_MERGE_DEPTH), "c.yml")
    assert root is not None
    last = Node(root, "c.yml").mapping("the file")[f"a{MAX_MERGE_DEPTH - 1}"]
    assert sorted(last.mapping("x")) == sorted(f"k{i}" for i in range(MAX_MERGE_DEPTH))


def test_a_mapping_that_merges_itself_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        parse_suite(SLEEP + "    params: &p {<<: *p}\n", source="t.yml")
    assert "params merges itself" in one_line(info.value)
    assert info.value.where == "t.yml:6"


def scalar_sequence(values: list[int]) -> Node:
    mark = yaml.Mark("t.yml", 0, 6, 0, "", 0)
    items = [yaml.ScalarNode("tag:yaml.org,2002:int", str(v), start_mark=mark) for v in values]
    return Node(yaml.SequenceNode("tag:yaml.org,2002:seq", items, start_mark=mark), "t.yml")


def test_the_axis_duplicate_check_is_linear() -> None:
    from fleet.config.suite import _axis

    workload = FAMILIES["sleep"].configure({}, "t.yml:4")
    values = list(range(60_000))
    started = time.monotonic()
    axis = _axis(workload, "seconds", scalar_sequence(values))
    assert len(axis.values) == 60_000
    with pytest.raises(ConfigError, match=r"axis seconds lists 59999\.0 twice"):
        _axis(workload, "seconds", scalar_sequence([*values, 59_999]))
    # quadratic (the old check) is 1.8e9 comparisons, minutes; linear takes about a second
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(("axis", "message"), [
    ("[1, '1', 1.0]", "axis x lists 1 and '1', which both read 1"),
    ("[true, 'true']", "axis x lists True and 'true', which both read true"),
    ("[2, 2.0]", "axis x lists 2 and 2.0, which both read 2"),
    ("[a, b, a]", "axis x lists 'a' twice"),
])
def test_axis_values_that_give_the_same_argv_are_refused(axis: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_suite(ECHO + f"    axes:\n      x: {axis}\n", source="t.yml")
    assert message in one_line(info.value)
    assert info.value.where == "t.yml:8"


def test_distinct_axis_values_still_make_distinct_cases() -> None:
    suite = parse_suite(ECHO + "    axes:\n      x: [1, '01', 1.5, one]\n", source="t.yml")
    assert [dict(c.params)["x"] for c in expand(suite)] == [1, "01", 1.5, "one"]


@pytest.mark.parametrize(("field", "written"), [
    ("timeout_seconds: 1e12", "write 1.0e+12"), ("timeout_seconds: 2.5E3", "write 2.5e+3"),
    ("params: {seconds: 1e3}", "write 1.0e+3"),
])
def test_an_exponent_yaml_reads_as_text_gets_the_hint(field: str, written: str) -> None:
    params = "" if field.startswith("params") else "    params: {seconds: 1}\n"
    with pytest.raises(ConfigError) as info:
        parse_suite(SLEEP + params + f"    {field}\n", source="t.yml")
    assert f"reads {field.split()[-1].rstrip('}')} as text: {written}" in one_line(info.value)


def test_the_hinted_form_is_a_number() -> None:
    (entry,) = parse_suite(SLEEP + "    params: {seconds: 1.0e+3}\n    timeout_seconds: "
                           "1.0e+5\n", source="t.yml").entries
    assert entry.timeout_seconds == 1e5 and entry.params == (("seconds", 1000.0),)


def test_a_timeout_beyond_30_days_is_refused_not_a_clock_overflow_mid_run() -> None:
    with pytest.raises(ConfigError) as info:
        parse_suite(SLEEP + "    params: {seconds: 1}\n    timeout_seconds: 1.0e+12\n",
                    source="t.yml")
    assert "timeout_seconds must be > 0 and <= 2.592e+06 (30 days), not 1e+12" \
        in one_line(info.value)
    assert info.value.where == "t.yml:7"


# ---- too many jobs ------------------------------------------------------------------------


def axes_suite(*sizes: int, repetitions: int = 1, exclude: str = "") -> str:
    names = ["kvm.a", "kvm.b", "kvm.c", "kvm.d"]
    axes = "".join(f"      {names[i]}: [{', '.join(map(str, range(n)))}]\n"
                   for i, n in enumerate(sizes))
    return (SLEEP + f"    params: {{seconds: 1}}\n    repetitions: {repetitions}\n"
            f"    axes:\n{axes}{exclude}")


def test_cases_times_repetitions_over_max_jobs_is_one_line() -> None:
    suite = parse_suite(axes_suite(100, 20, repetitions=3), source="t.yml")
    assert len(expand(suite)) == 2000  # no limit asked: every case
    with pytest.raises(ConfigError) as info:
        expand(suite, max_jobs=5000)
    line = one_line(info.value)
    assert "suite t has more than 5000 jobs: its cases x repetitions pass 5000 at workload s" \
        in line and "--max-jobs" in line
    assert info.value.where == "t.yml:4"
    assert len(expand(suite, max_jobs=6000)) == 2000


def test_repetitions_alone_can_pass_the_limit() -> None:
    suite = parse_suite(axes_suite(1, repetitions=100_000), source="t.yml")
    with pytest.raises(ConfigError, match="more than 10000 jobs"):
        expand(suite, max_jobs=DEFAULT_MAX_JOBS)


def test_a_huge_cross_product_is_refused_before_it_is_walked() -> None:
    # 300**4 = 8.1e9 combinations, every one excluded but the first few: not walked at all
    suite = parse_suite(axes_suite(300, 300, 300, 300, exclude=(
        "    exclude:\n      - {kvm.a: 1}\n")), source="t.yml")
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        expand(suite, max_jobs=100)
    assert "its axes cross to 8100000000 combinations, more than 100 x --max-jobs 100" \
        in one_line(info.value)
    assert time.monotonic() - started < 10  # generous: nothing is walked


def test_many_exclude_rules_cost_one_lookup_per_combination() -> None:
    rules = "".join(f"      - {{kvm.a: {i}, kvm.b: {i}}}\n" for i in range(200))
    suite = parse_suite(axes_suite(200, 200, exclude="    exclude:\n" + rules), source="t.yml")
    cases = expand(suite, max_jobs=50_000)
    assert len(cases) == 200 * 200 - 200
    assert all(dict(c.variant)["kvm.a"] != dict(c.variant)["kvm.b"] for c in cases)


def test_cli_and_core_agree_on_the_limits() -> None:
    from fleet.api import plan as plan_api
    from fleet.cli import args as cli_args

    assert cli_args.DEFAULT_MAX_JOBS == DEFAULT_MAX_JOBS
    assert cli_args.MAX_SEED == plan_api.MAX_SEED == 2**63 - 1
