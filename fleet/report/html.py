"""ReportData -> one self-contained HTML page (inline CSS, no script, no network). Pure.

Every string from the store or the user goes through ``html.escape``. Numeric cells carry
the exact stored median in ``data-value`` (``repr`` of the float) beside the shown text.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from html import escape

from fleet.model import MISSING_TEXT, percent_text
from fleet.report.model import Cell, Change, HostView, MetricTable, ReportData, RunSummary

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
h3{font-size:1em;margin-bottom:.3em}
table{border-collapse:collapse;margin:.4em 0 1em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.2em .6em;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}
thead th{background:#f0f0f0}.ci{color:#666;font-size:.85em}.n{color:#888;font-size:.8em}
.miss{color:#a00}img{max-width:100%;border:1px solid #eee;margin:.3em 0}
.meta td,.meta th{text-align:left}details{margin:.5em 0}
"""


def number(value: float) -> str:
    """Shortest text that reads back as the same float, cut to 9 significant digits."""
    if not math.isfinite(value):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = repr(value)
    digits = sum(ch.isdigit() for ch in text.split("e")[0].lstrip("0.-"))
    return text if digits <= 9 else f"{value:.9g}"


def _time(unix_seconds: float | None) -> str:
    if unix_seconds is None:
        return MISSING_TEXT
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(unix_seconds))


def _bytes(value: int | None) -> str:
    return MISSING_TEXT if value is None else f"{value / 2**30:.1f} GiB"


def render(data: ReportData, table_images: Sequence[str | None],
           series_images: Mapping[str, Sequence[tuple[str, str]]]) -> str:
    """``table_images[i]``: the plot file of ``data.tables[i]``; ``series_images``: host ->
    (series name, file) pairs."""
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{escape(data.title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{escape(data.title)}</h1>", _runs(data.runs), _mismatches(data.mismatches),
             _hosts(data.hosts)]
    parts.append(_tables(data, table_images))
    parts.append(_series(series_images))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _runs(runs: Sequence[RunSummary]) -> str:
    rows = "".join(
        f"<tr><td>{escape(r.run_id)}</td><td>{escape(r.suite)}</td><td>{escape(r.status)}</td>"
        f"<td>{_time(r.created_at_unix_seconds)}</td><td>{_time(r.finished_at_unix_seconds)}"
        f"</td><td>{r.seed}</td><td>{r.cases}</td><td>{r.jobs}</td><td>{r.attempts}</td>"
        f"<td>{r.completed}</td><td>{len(r.skipped)}</td></tr>" for r in runs)
    skipped = "".join(f"<li>{escape(r.run_id)}: case {escape(c)}: {escape(why)}</li>"
                      for r in runs for c, why in r.skipped[:50])
    head = ("<tr><th>run</th><th>suite</th><th>status</th><th>created</th><th>finished</th>"
            "<th>seed</th><th>cases</th><th>jobs</th><th>attempts</th><th>completed</th>"
            "<th>skipped cases</th></tr>")
    out = f'<h2 id="summary">Run summary</h2><table class="meta"><thead>{head}</thead>' \
          f"<tbody>{rows}</tbody></table>"
    return out + (f"<details><summary>skipped cases</summary><ul>{skipped}</ul></details>"
                  if skipped else "")


def _mismatches(texts: Sequence[str]) -> str:
    if not texts:
        return ""
    items = "".join(f"<li>{escape(t)}</li>" for t in texts)
    return (f'<h2 id="mismatches">Allowed fingerprint differences</h2><p>compared although '
            f"the hosts differ (--allow-mismatch):</p><ul>{items}</ul>")


def _hosts(hosts: Sequence[HostView]) -> str:
    out = ['<h2 id="hosts">Hosts and topologies</h2>']
    for h in hosts:
        out.append(f"<h3>{escape(h.host)}</h3>")
        if h.fingerprint is None:
            out.append(f"<p>no facts snapshot stored for {escape(h.host)} "
                       f"({h.completed}/{h.attempts} attempts completed)</p>")
            continue
        meta = [("hostname", h.hostname), ("CPU", h.cpu_model),
                ("logical CPUs", None if h.logical_cpus is None else str(h.logical_cpus)),
                ("memory", _bytes(h.mem_total_bytes)), ("kernel", h.kernel_release),
                ("cmdline", h.kernel_cmdline), ("THP", h.thp_enabled),
                ("fingerprint", h.fingerprint),
                ("attempts", f"{h.completed} completed of {h.attempts}")]
        out.append('<table class="meta">' + "".join(
            f"<tr><th>{escape(k)}</th><td>{escape(v or '-')}</td></tr>" for k, v in meta)
            + "</table>")
        ids = [n.node_id for n in h.nodes]
        head = "".join(f"<th>to {i}</th>" for i in ids)
        rows = "".join(
            f"<tr><td>node {n.node_id}</td><td>{escape(n.cpus)}</td>"
            f"<td>{_bytes(n.mem_total_bytes)}</td>"
            + "".join(f"<td>{d}</td>" for d in n.distances) + "</tr>" for n in h.nodes)
        out.append(f'<table class="topology"><thead><tr><th>node</th><th>CPUs</th>'
                   f"<th>memory</th>{head}</tr></thead><tbody>{rows}</tbody></table>")
    return "\n".join(out)


def _tables(data: ReportData, images: Sequence[str | None]) -> str:
    out = [f'<h2 id="metrics">Metrics by {escape(data.column_axis)}</h2>',
           "<p>Cells: median of the completed attempts' values, its 95% confidence interval "
           "(bootstrap) and n. Rows: the settings that vary across the cases.</p>"]
    sampler: list[str] = []
    for table, image in zip(data.tables, images, strict=True):
        block = _table_block(table, image)
        (sampler if table.source == "sampler" else out).append(block)
    if sampler:
        out.append("<details open><summary>sampled while running (source: sampler)</summary>")
        out.extend(sampler)
        out.append("</details>")
    return "\n".join(out)


def _table_block(table: MetricTable, image: str | None) -> str:
    where = f" on {table.host}" if table.host else ""
    title = f"{table.metric} ({table.unit}){where}"
    pair = bool(table.changes)
    head = "".join(f"<th>{escape(c)}</th>" for c in table.columns)
    head += "<th>change (95% CI)</th><th>verdict</th>" if pair else ""
    body = []
    for i, (row, cells) in enumerate(zip(table.rows, table.cells, strict=True)):
        tds = "".join(_cell(c) for c in cells)
        if pair:
            tds += _change(table.changes[i])
        body.append(f"<tr><td>{escape(row)}</td>{tds}</tr>")
    img = (f'<img src="{escape(image)}" alt="{escape(title)} plot">' if image else "")
    return (f'<h3>{escape(title)}</h3>{img}<table class="metric" data-metric="'
            f'{escape(table.metric)}" data-host="{escape(table.host or "")}"><thead><tr>'
            f"<th>{escape(table.row_header)}</th>{head}</tr></thead><tbody>{''.join(body)}"
            "</tbody></table>")


def _cell(cell: Cell | None) -> str:
    if cell is None:
        return "<td>-</td>"
    if cell.median is None:
        return f'<td class="miss">missing ({cell.missing})</td>'
    ci = ("" if cell.ci_low is None or cell.ci_high is None
          else f' <span class="ci">[{number(cell.ci_low)}, {number(cell.ci_high)}]</span>')
    miss = f' <span class="miss">{cell.missing} missing</span>' if cell.missing else ""
    return (f'<td data-value="{cell.median!r}"><span class="v">{number(cell.median)}</span>'
            f'{ci} <span class="n">n={cell.n}</span>{miss}</td>')


def _change(change: Change | None) -> str:
    if change is None:
        return f"<td>{MISSING_TEXT}</td><td>{MISSING_TEXT}</td>"
    low, high = change.ci_low, change.ci_high
    ci = ("" if low is None or high is None
          else f' <span class="ci">[{percent_text(low)}, {percent_text(high)}]</span>')
    return (f"<td>{percent_text(change.relative_change)}{ci}</td>"
            f'<td title="{escape(change.reason)}">{escape(change.verdict)}</td>')


def _series(images: Mapping[str, Sequence[tuple[str, str]]]) -> str:
    out = ['<h2 id="series">TLB shootdowns and SecPageTables per node during a case</h2>']
    if not images:
        out.append("<p>no sampled series stored for this run (sampling off, or no completed "
                   "attempt recorded them)</p>")
    for host, files in sorted(images.items()):
        out.append(f"<h3>{escape(host)}</h3>")
        out.extend(f'<img src="{escape(f)}" alt="{escape(name)} on {escape(host)}">'
                   for name, f in files)
    return "\n".join(out)
