"""Workloads: argv building (values are data), output parsing on captured selftest output."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.config.suite import load_suite, parse_suite
from fleet.errors import ConfigError, ParseError
from fleet.hosts import Host
from fleet.model import Measurement
from fleet.transport.local import LocalTransport
from fleet.workloads.base import ParamSpec, format_param_value
from fleet.workloads.command import CommandWorkload, parse_template
from fleet.workloads.sleep import SleepWorkload

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "benchmarks" / "examples" / "kvm_dirty_log_perf.yml"
QUICKSTART = REPO / "benchmarks" / "quickstart.yml"
SELFTESTS = Path("kvm_selftests") / "captured"


def command_suite(body: str) -> str:
    return ("schema_version: 1\nname: t\nworkloads:\n  - name: w\n    type: command\n"
            + body)


def command(body: str) -> CommandWorkload:
    workload = parse_suite(command_suite(body), source="t.yml").entries[0].workload
    assert isinstance(workload, CommandWorkload)
    return workload


def example_workload() -> CommandWorkload:
    workload = load_suite(EXAMPLE).entries[0].workload
    assert isinstance(workload, CommandWorkload)
    return workload


# ---- argv: one element per template element, values never re-parsed ------------------------

ECHO = command("    argv: [echo, '{x}', 'pre-{x}-{y}', '{{x}}']\n"
               "    axes: {x: [a], y: [b]}\n")
TEXT = st.text(st.characters(exclude_characters="\0", exclude_categories=["Cs"]))


@given(x=TEXT, y=TEXT)
def test_any_text_value_stays_one_argv_element_unchanged(x: str, y: str) -> None:
    argv = ECHO.build({"x": x, "y": y}, None)
    assert argv == ("echo", x, f"pre-{x}-{y}", "{x}")


def test_shell_metacharacters_reach_the_program_as_data() -> None:
    hostile = "a b; rm -rf / $(touch /tmp/pwned) `id` 'q' \"d\" {y} | & > x\n"
    result = LocalTransport(Host("localhost", "localhost", connection="local")).run(
        ECHO.build({"x": hostile, "y": "{x}"}, None))
    assert result.ok
    assert result.stdout == f"{hostile} pre-{hostile}-{{x}} {{x}}\n"


def test_numbers_and_booleans_format_plainly() -> None:
    assert [format_param_value(v) for v in (3, 2.0, 0.5, 1e-7, True, False, "x")] == \
        ["3", "2", "0.5", "1e-07", "true", "false", "x"]


def test_template_parts_and_stray_braces() -> None:
    assert parse_template("--size={size}M") == ((False, "--size="), (True, "size"), (False, "M"))
    assert parse_template("{{}}") == ((False, "{"), (False, "}"))
    for bad in ("{", "a}", "{x", "{1x}", "{x.y}", "{x!r}"):
        with pytest.raises(ValueError, match="stray"):
            parse_template(bad)


def test_placeholders_are_the_parameter_schema() -> None:
    assert ECHO.params() == (ParamSpec("x", "scalar", description="argv placeholder"),
                             ParamSpec("y", "scalar", description="argv placeholder"))
    assert ECHO.identity() == {"argv": ["echo", "{x}", "pre-{x}-{y}", "{{x}}"]}


def test_nul_byte_values_are_refused_before_any_argv() -> None:
    with pytest.raises(ValueError, match="NUL"):
        ParamSpec("x", "scalar").coerce("a\0b")


# ---- parsing real dirty_log_perf_test output ------------------------------------------------


def test_dirty_log_perf_captured_three_runs(corpus: Path) -> None:
    text = (corpus / SELFTESTS /
            "dirty_log_perf_test__bgardon_v2_tdp_vs_legacy_96vcpu_1gb.txt").read_text()
    found = example_workload().parse(text, "", 0)
    populate = [m.value for m in found if m.metric == "populate_seconds"]
    assert populate == [4.972184425, 4.892940915, 4.878083336]
    disable = [m.value for m in found if m.metric == "disable_dirty_logging_seconds"]
    assert disable[:2] == [256.682188868, 4.246216551]
    assert disable[2] == 3.169381810
    dirty = [m for m in found if m.metric == "dirty_memory_seconds"]
    assert dirty[:2] == [
        Measurement("dirty_memory_seconds", 0.061862112, "seconds", (("iteration", "1"),)),
        Measurement("dirty_memory_seconds", 0.664103656, "seconds", (("iteration", "2"),))]
    assert dirty[3].value == 29.217064826  # run 2 (legacy MMU), iteration 2
    assert all(m.value is not None for m in found)


def test_metric_absent_from_output_is_missing_not_zero(corpus: Path) -> None:
    text = (corpus / SELFTESTS /
            "access_tracking_perf_test__peterx_failure_2022-04.txt").read_text()
    found = example_workload().parse(text, "", 0)
    assert {m.metric for m in found} == {
        "populate_seconds", "enable_dirty_logging_seconds", "dirty_memory_seconds",
        "get_dirty_log_seconds", "clear_dirty_log_seconds", "disable_dirty_logging_seconds"}
    assert all(m.value is None and m.labels == () for m in found)


def test_failed_run_reports_every_metric_missing(corpus: Path) -> None:
    text = (corpus / SELFTESTS /
            "dirty_log_perf_test__bgardon_v2_tdp_vs_legacy_96vcpu_1gb.txt").read_text()
    found = example_workload().parse(text, "", 1)
    assert len(found) == 6
    assert all(m.value is None for m in found)


def test_negative_timespec_is_a_parse_error_not_a_number(corpus: Path) -> None:
    text = (corpus / SELFTESTS / "kselftest__loongarch_v1_2023-08-01.txt").read_text()
    workload = command(
        "    argv: [kvm_page_table_test]\n    parse:\n      patterns:\n"
        "        - 'KVM_CREATE_MAPPINGS: total execution time: (?P<create_seconds>[-0-9.]+)s'\n"
        "      metrics: {create_seconds: {unit: seconds}}\n")
    with pytest.raises(ParseError, match=r"create_seconds: captured '-3\.-672213074'"):
        workload.parse(text, "", 0)


def test_json_output_with_paths() -> None:
    workload = command(
        "    argv: [bench, --json]\n    parse:\n      format: json\n      metrics:\n"
        "        p50: {unit: seconds, path: latency.p50}\n"
        "        first: {unit: ops, path: runs.0.ops}\n"
        "        absent: {unit: bytes, path: nope.deeper}\n")
    found = workload.parse('{"latency": {"p50": 0.25}, "runs": [{"ops": 7}]}', "", 0)
    assert found == (Measurement("p50", 0.25, "seconds"), Measurement("first", 7.0, "ops"),
                     Measurement("absent", None, "bytes"))
    with pytest.raises(ParseError, match="not JSON"):
        workload.parse("Populate memory time: 1s", "", 0)
    with pytest.raises(ParseError, match=r"latency\.p50 holds 'fast'"):
        workload.parse('{"latency": {"p50": "fast"}}', "", 0)


def test_json_null_and_missing_paths_are_missing() -> None:
    workload = command(
        "    argv: [bench]\n    parse:\n      format: json\n"
        "      metrics: {p50: {unit: seconds, path: latency.p50}}\n")
    assert workload.parse('{"latency": {"p50": null}}', "", 0) == \
        (Measurement("p50", None, "seconds"),)
    assert workload.parse("[]", "", 0) == (Measurement("p50", None, "seconds"),)


# ---- quickstart: the real command on this machine -------------------------------------------


def test_quickstart_dd_case_runs_and_parses_here() -> None:
    entry = load_suite(QUICKSTART).entries[0]
    argv = entry.workload.build({"block_size": "64K", "volume": "16M"}, None)
    result = LocalTransport(Host("localhost", "localhost", connection="local")).run(argv)
    assert result.ok, result.stderr
    found = {m.metric: m for m in entry.workload.parse(result.stdout, result.stderr, 0)}
    assert found["copied_bytes"].value == 16 * 1024 * 1024
    assert found["records_in"].value == 256
    elapsed = found["elapsed_seconds"].value
    assert elapsed is not None and 0 < elapsed < 10
    assert found["elapsed_seconds"].unit == "seconds"


# ---- sleep --------------------------------------------------------------------------------


def test_sleep_builds_argv_and_estimates_its_seconds() -> None:
    sleep = SleepWorkload()
    assert sleep.build({"seconds": 0.5}, None) == ("sleep", "0.5")
    assert sleep.build({"seconds": 2}, None) == ("sleep", "2")
    assert sleep.estimate_seconds({"seconds": 2.0}) == 2.0
    assert sleep.parse("", "", 0) == ()
    with pytest.raises(ValueError, match=">= 0"):
        sleep.build({"seconds": -1}, None)


def test_sleep_takes_no_command_keys() -> None:
    text = ("schema_version: 1\nname: t\nworkloads:\n  - name: s\n    type: sleep\n"
            "    argv: [x]\n")
    with pytest.raises(ConfigError, match="unknown key 'argv'") as info:
        parse_suite(text, source="s.yml")
    assert info.value.where == "s.yml:6"
