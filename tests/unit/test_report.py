"""fleet report: tables reproduce the stored numbers exactly; plots exist; bad input is one line."""

from __future__ import annotations

import json
import statistics
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.errors import ConfigError, StoreError
from fleet.model import CpuInfo, Facts, IommuInfo, KvmInfo, Measurement, NumaNode, Topology
from fleet.report.build import ReportRequest, build_report, parse_axis
from fleet.report.html import number
from fleet.runs import Attempt, JobKey, RunInfo, SeriesPoint
from fleet.store import Store
from fleet.store.runs import create_run, load_run, record_attempt, run_suite_text

HOSTS = ("h1", "h2")
# case id -> settings: vcpus x eps (the split-huge-pages-on-fault table shape)
EPS = "kvm.eager_page_split"
CASES = {f"c{v}{e}": {"vcpus": v, EPS: e} for v in (1, 2, 4) for e in ("N", "Y")}
REPS = 5
SUITE = """schema_version: 1
name: eps
compare:
  metrics:
    elapsed_seconds: {direction: lower_is_better}
workloads:
  - name: split
    type: command
    argv: ["true", "{vcpus}"]
    axes:
      vcpus: [1, 2, 4]
      kvm.eager_page_split: [N, Y]
"""


def elapsed(case_id: str, host: str, rep: int) -> float:
    s = CASES[case_id]
    base = 0.5 * int(s["vcpus"]) * (0.8 if s[EPS] == "Y" else 1.0)
    return round(base + 0.013 * rep + (0.1 if host == "h2" else 0.0), 6) + 1e-7


def facts(host: str) -> Facts:
    nodes = (NumaNode(0, (0, 1), 1 << 30, 1 << 29, (10, 20)),
             NumaNode(1, (2, 3), 1 << 30, 1 << 29, (20, 10)))
    return Facts(host, 50.0, f"{host}.lab", "6.8.0-test", "ro quiet",
                 CpuInfo("GenuineIntel", "Test CPU <b>&", "0x1", 4),
                 Topology(nodes, (0, 1)), 2 << 30, (), "madvise", "madvise", 1,
                 KvmInfo(True, ()), IommuInfo(False, ()), fingerprint=f"fp-{host}")


def make_store(path: Path, run_id: str = "r1", shift: float = 0.0) -> Store:
    store = Store.open(path)
    from fleet.hosts import Host

    store.save_snapshots([Host(h, "127.0.0.1", "ssh", 22, None) for h in HOSTS],
                         [facts(h) for h in HOSTS])
    jobs = [JobKey(c, r, h) for c in CASES for r in range(1, REPS + 1) for h in HOSTS]
    plan = {"cases": {c: {"params": {"vcpus": s["vcpus"], "iterations": 3},
                          "knobs": {}, "variant": {EPS: s[EPS]}}
                      for c, s in CASES.items()}}
    info = RunInfo(run_id, "eps", "eps.yml", "sha", 7, ("inv.yml",), None, "0.1.0", 100.0,
                   200.0, "completed")
    create_run(store, info, suite_text=SUITE, plan_json=json.dumps(plan),
               cases=[(c, "split", json.dumps({"vcpus": s["vcpus"]})) for c, s in CASES.items()],
               jobs=jobs, skipped=[])
    for job in jobs:
        assert job.host is not None
        value = elapsed(job.case_id, job.host, job.repetition) + shift
        samples = tuple(
            SeriesPoint(series, (("node", str(n)),), 10.0 + t, 1000.0 + t, float(t * (n + 1)))
            for series in ("tlb_shootdowns", "sec_page_tables_bytes")
            for n in (0, 1) for t in range(5))
        record_attempt(store, Attempt(
            run_id, job, job.host, 1, "completed", 110.0, 111.0, 0, None, "", "", False, False,
            f"fp-{job.host}", measurements=(
                Measurement("elapsed_seconds", value, "seconds"),
                Measurement("tlb_shootdowns_per_second", 12.5, "per_second",
                            (("source", "sampler"),)),
                Measurement("tlb_shootdowns_per_second", 6.0, "per_second",
                            (("node", "0"), ("source", "sampler"))),
                Measurement("sampler_samples", 5.0, "count", (("source", "sampler"),)),
                Measurement("lost", None, "bytes")),
            samples=samples))
    return store


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    make_store(tmp_path / "s.sqlite").close()
    return tmp_path / "s.sqlite"


class _Cells(HTMLParser):
    """Collects each metric table's header and (row label, data-values) rows."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[tuple[str, str], list[list[str | None]]] = {}
        self.heads: dict[tuple[str, str], list[str]] = {}
        self.images: list[str] = []
        self._table: tuple[str, str] | None = None
        self._row: list[str | None] | None = None
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"] or "")
        if tag == "table" and a.get("class") == "metric":
            self._table = (a["data-metric"] or "", a["data-host"] or "")
            self.tables[self._table] = []
            self.heads[self._table] = []
        if self._table and tag == "tr":
            self._row = []
        if self._table and self._row is not None and tag in ("td", "th"):
            self._in = tag
            self._row.append(a.get("data-value"))

    def handle_data(self, data: str) -> None:
        if self._table and self._row is not None and self._in == "th" and data.strip():
            self.heads[self._table].append(data.strip())
        if self._table and self._row is not None and self._in == "td" and len(self._row) == 1 \
                and self._row[0] is None:
            self._row[0] = data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._in = None
        if tag == "tr" and self._table and self._row is not None:
            if self._row and not self.heads[self._table][:0]:
                self.tables[self._table].append(self._row)
            self._row = None
        if tag == "table":
            self._table = None


def parse(path: Path) -> _Cells:
    cells = _Cells()
    cells.feed(path.read_text())
    return cells


def stored_values(store_path: Path, run_id: str = "r1") -> dict[tuple[str, str], list[float]]:
    with Store.open(store_path) as store:
        detail = load_run(store, run_id)
    out: dict[tuple[str, str], list[float]] = {}
    for a in detail.attempts:
        for m in a.attempt.measurements:
            if m.metric == "elapsed_seconds" and m.value is not None:
                out.setdefault((a.attempt.job.case_id, a.attempt.host), []).append(m.value)
    return out


def test_axis_table_reproduces_stored_medians_exactly(store_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    result = build_report(ReportRequest(store_path, "r1", out, axis=EPS,
                                        axis_values=("N", "Y")))
    page = parse(result.index_path)
    values = stored_values(store_path)
    for host in HOSTS:
        rows = [r for r in page.tables[("elapsed_seconds", host)] if r and r[0] is not None]
        assert [r[0] for r in rows] == ["1", "2", "4"]  # rows = vCPU count, in order
        for row in rows:
            n, y = row[1], row[2]
            assert n == repr(statistics.median(values[(f"c{row[0]}N", host)]))
            assert y == repr(statistics.median(values[(f"c{row[0]}Y", host)]))
    text = result.index_path.read_text()
    assert f"<th>{EPS}</th>" not in text  # the axis is the columns, not a row
    assert "<b>&" not in text and "Test CPU &lt;b&gt;&amp;" in text  # escaped
    # Y is 20% faster on a metric the suite calls lower_is_better, 5 vs 5 values: better
    assert text.count("<td title=\"p=0.0079 &lt; 0.05") == 6 and ">better</td>" in text


def test_shown_text_is_the_stored_number_for_single_values() -> None:
    for v in (0.0557, 1.0, 12.5, 1e-7 + 0.5, 123456789.0, 0.1 + 0.2):
        assert float(number(v)) == pytest.approx(v, rel=1e-9)
    assert number(0.0557) == "0.0557"
    assert number(3.0) == "3"


def test_hosts_report_has_plots_topology_and_series(store_path: Path, tmp_path: Path) -> None:
    result = build_report(ReportRequest(store_path, "r1", tmp_path / "rep"))
    page = parse(result.index_path)
    assert page.images and all((result.out_dir / i).stat().st_size > 1000 for i in page.images)
    assert any(i.startswith("series-") for i in page.images)
    assert set(result.images) == set(page.images)
    table = page.tables[("elapsed_seconds", "")]
    assert len([r for r in table if r and r[0]]) == 6  # vcpus x eps rows, hosts as columns
    text = result.index_path.read_text()
    assert "<td>node 1</td><td>2-3</td>" in text and "<td>20</td><td>10</td>" in text
    assert ("sampler_samples", "") not in page.tables  # neutral sampler figures left out
    assert ("tlb_shootdowns_per_second", "") in page.tables
    assert "missing (5)" in text  # the None result is shown as missing, never 0
    assert "verdict" not in text  # hosts are shown side by side, not judged


def test_compare_runs_table_and_atomic_replace(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = make_store(path)
    store.close()
    with Store.open(path) as s2:
        _second_run(s2)
    out = tmp_path / "rep"
    build_report(ReportRequest(path, "r1", out))
    result = build_report(ReportRequest(path, "r1", out, compare_run_id="r2"))
    page = parse(result.index_path)
    rows = [r for r in page.tables[("elapsed_seconds", "h1")] if r and r[0]]
    assert len(rows) == 6
    assert ">worse</td>" in result.index_path.read_text()  # r2 is 20% slower
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rep")]


def _second_run(store: Store) -> None:
    detail = load_run(store, "r1")
    info = RunInfo("r2", "eps", "eps.yml", "sha", 8, ("inv.yml",), None, "0.1.0", 300.0,
                   400.0, "completed")
    _, plan = run_suite_text(store, "r1")
    create_run(store, info, suite_text="", plan_json=plan, cases=detail.cases,
               jobs=detail.jobs, skipped=[])
    for a in detail.attempts:
        m = a.attempt.measurements[0]
        assert m.value is not None
        record_attempt(store, Attempt(
            "r2", a.attempt.job, a.attempt.host, 1, "completed", 310.0, 311.0, 0, None, "", "",
            False, False, a.attempt.fingerprint,
            measurements=(Measurement(m.metric, m.value * 1.2, m.unit),)))


def test_compare_with_no_shared_case_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    make_store(path).close()
    with Store.open(path) as store:
        info = RunInfo("r3", "other", "o.yml", "x", 1, (), None, "0", 500.0, 501.0, "completed")
        job = JobKey("z1", 1, "h1")
        create_run(store, info, suite_text="", plan_json="{}",
                   cases=[("z1", "other", '{"size": 1}')], jobs=[job], skipped=[])
        record_attempt(store, Attempt("r3", job, "h1", 1, "completed", 1.0, 2.0, 0, None, "", "",
                                      False, False, None,
                                      measurements=(Measurement("copied", 5.0, "bytes"),)))
    with pytest.raises(ConfigError, match="share no case"):
        build_report(ReportRequest(path, "r1", tmp_path / "rep", compare_run_id="r3"))
    assert not (tmp_path / "rep").exists()


def test_bad_input_is_one_line_exit_2(store_path: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "rep")
    cases = [["report", "nope", "-o", out],
             ["report", "r1", "--axis", f"{EPS}=N,X", "-o", out],
             ["report", "r1", "--axis", "vcpus", "-o", out],
             ["report", "r1", "--axis", "color=red,blue", "-o", out],
             ["report", "r1", "--compare", "r9", "-o", out]]
    for argv in cases:
        assert main([*argv, "--store", str(store_path)]) == 2, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not Path(out).exists()
    assert main(["report", "r1", "-o", out, "--store", str(tmp_path / "none.sqlite")]) == 2
    assert "no store" in capsys.readouterr().err


def test_empty_run_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "e.sqlite"
    with Store.open(path) as store:
        create_run(store, RunInfo("r0", "s", "s.yml", "x", 1, (), None, "0", 1.0, None,
                                  "running"), suite_text="", plan_json="{}", cases=[],
                   jobs=[], skipped=[])
    with pytest.raises(ConfigError, match="no completed attempt"):
        build_report(ReportRequest(path, "r0", tmp_path / "rep"))
    with pytest.raises(StoreError, match="no run"):
        build_report(ReportRequest(path, "zz", tmp_path / "rep"))


def test_refuses_to_overwrite_a_directory_that_is_not_a_report(store_path: Path,
                                                              tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigError, match="not a fleet report"):
        build_report(ReportRequest(store_path, "r1", target))
    assert (target / "thesis.tex").read_text() == "precious"


def test_parse_axis() -> None:
    assert parse_axis("eps=N,Y") == ("eps", ("N", "Y"))
    for bad in ("eps", "eps=N", "=N,Y", "eps=N,N"):
        with pytest.raises(ConfigError):
            parse_axis(bad)


def test_cells_carry_the_stats_modules_median_interval(store_path: Path, tmp_path: Path) -> None:
    from fleet.compare.stats import median_intervals
    from fleet.config.compare import Policy

    result = build_report(ReportRequest(store_path, "r1", tmp_path / "rep", axis=EPS,
                                        axis_values=("N", "Y")))
    table = next(t for t in result.data.tables if t.metric == "elapsed_seconds")
    cells = [c for row in table.cells for c in row if c is not None]
    expected = median_intervals([c.values for c in cells], policy=Policy())
    assert [(c.ci_low, c.ci_high) for c in cells] == expected
    assert all(c.ci_low is not None and c.ci_low <= c.median <= c.ci_high  # type: ignore[operator]
               for c in cells)
