"""Bad command-line input is one line on stderr and exit 2 before anything is recorded or any
host is touched: --seed out of range, --pushgateway that is no URL (its password never shown),
--max-jobs, `fleet compare R R`, `fleet gate --baseline-axis` naming no axis of the suite."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_export_collector import RUN, write_run

from fleet.api.compare import GateRequest, check_baseline_axis, compare_stored, run_gate
from fleet.cli import main
from fleet.config.suite import load_suite
from fleet.errors import ConfigError
from fleet.plan.matrix import expand

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = str(REPO / "benchmarks" / "quickstart.yml")
LOCAL = str(REPO / "inventories" / "local.yml")


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("argv", [
    ["plan", QUICKSTART, "--seed", str(2**70)],
    ["plan", QUICKSTART, "--seed", "-1"],
    ["run", QUICKSTART, "-i", LOCAL, "--seed", str(2**63)],
    ["gate", QUICKSTART, "-i", LOCAL, "--baseline", "main", "--seed", str(2**70)],
    ["run", QUICKSTART, "-i", LOCAL, "--max-jobs", "0"],
], ids=["plan-2^70", "plan-negative", "run-2^63", "gate-2^70", "max-jobs-0"])
def test_out_of_range_numbers_are_usage_errors(argv: list[str], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "fleet.sqlite"
    with pytest.raises(SystemExit) as done:
        main([*argv, "--store", str(store)])
    assert done.value.code == 2
    line = one_error_line(capsys)
    assert "--seed" in line or "--max-jobs" in line
    assert not store.exists()


def test_the_seed_range_is_what_the_store_keeps() -> None:
    from fleet.api.plan import check_seed
    from fleet.cli.args import seed_arg

    assert seed_arg(str(2**63 - 1)) == 2**63 - 1 and seed_arg("0") == 0
    check_seed(2**63 - 1)
    with pytest.raises(ConfigError, match="seed 9223372036854775808 is out of range"):
        check_seed(2**63)


@pytest.mark.parametrize(("url", "message"), [
    ("not a url", "'not a url': not a URL (it has spaces or control characters)"),
    ("127.0.0.1:9091", "not an http:// or https:// URL"),
    ("ftp://gw:9091", "not an http:// or https:// URL"),
    ("http://", "the URL names no host"),
    ("http://gw:99999", "not a URL (Port out of range"),
    ("http://gw:9091/?x=1", "the URL has a query or fragment"),
    ("", "not an http:// or https:// URL"),
    ("http://fleet:s3cret@:9091", "'http://***@:9091': the URL names no host"),
    ("http://u:s3cret@not a url", "not a URL (it has spaces or control characters)"),
    ("http://gw_/", "'gw_' is not a host name or address"),
    ("fleet:s3cret@gw:9091", "'***@gw:9091': not an http"),
])
def test_a_bad_pushgateway_is_refused_before_the_run(url: str, message: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "fleet.sqlite"
    code = main(["run", QUICKSTART, "-i", LOCAL, "--store", str(store), "--pushgateway", url])
    assert code == 2
    line = one_error_line(capsys)
    assert line.startswith("fleet: error: --pushgateway: --pushgateway ") and message in line
    assert "s3cret" not in line
    assert not store.exists()  # nothing recorded, no facts gathered


def test_a_suite_over_max_jobs_is_refused_before_any_host(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "fleet.sqlite"
    code = main(["run", QUICKSTART, "-i", LOCAL, "--store", str(store), "--max-jobs", "7"])
    assert code == 2
    line = one_error_line(capsys)
    assert f"{QUICKSTART}:12: suite quickstart has more than 7 jobs" in line
    assert "--max-jobs N" in line
    assert not store.exists()
    code = main(["plan", QUICKSTART, "-i", LOCAL, "--gather", "--store", str(store),
                 "--max-jobs", "7"])
    assert code == 2 and "more than 7 jobs" in one_error_line(capsys)
    assert not store.exists()  # --gather stores facts: none were gathered


def test_a_run_compared_with_itself_is_refused(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "fleet.sqlite"
    write_run(store)
    with pytest.raises(ConfigError) as info:
        compare_stored(store, [RUN, RUN])
    assert str(info.value) == (
        f"fleet compare: run {RUN} is given twice: a run compared with itself shows nothing "
        "(name two runs, or compare variants inside one run: fleet compare RUN --axis "
        "NAME=A,B)")
    assert main(["compare", RUN, RUN, "--store", str(store)]) == 2
    assert "compared with itself" in one_error_line(capsys)


def test_gate_baseline_axis_not_in_the_suite_is_refused_before_anything_runs(
        tmp_path: Path) -> None:
    store = tmp_path / "fleet.sqlite"
    suite = Path(QUICKSTART)

    def gate(name: str, value: str) -> str:
        request = GateRequest(suite, (Path(LOCAL),), None, store, baseline_axis=(name, value))
        with pytest.raises(ConfigError) as info:
            run_gate(request, on_event=lambda e: None, on_warning=lambda w: None)
        assert info.value.where == QUICKSTART
        return str(info.value)

    assert gate("zz", "1").endswith("--baseline-axis zz=1: zz is not an axis of the suite "
                                    "(its axes: block_size, volume)")
    assert gate("block_size", "1M").endswith(
        "--baseline-axis block_size=1M: axis block_size has no value '1M' (its values: 4M, 64K)")
    assert not store.exists()  # nothing ran, nothing recorded


def test_baseline_axis_values_match_as_text() -> None:
    cases = expand(load_suite(Path(QUICKSTART)))
    check_baseline_axis(cases, "block_size", "64K", where="q")
    with pytest.raises(ConfigError, match="every case has"):
        check_baseline_axis(tuple(c for c in cases if dict(c.params)["block_size"] == "4M"),
                            "block_size", "4M", where="q")
