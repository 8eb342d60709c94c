"""A real local run -> `fleet report` -> headless Chromium: the page loads with every plot.

Chromium (Debian package ``chromium``, installed by scripts/bootstrap) renders the report
twice: a screenshot that must not be blank, and a DOM dump of a copy of the page with a
small script that counts the images that loaded (naturalWidth > 0).
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
from pathlib import Path

import pytest
from matplotlib import image as mpimg

from fleet.api.run import RunRequest, start_run
from fleet.cli import main
from fleet.store import Store
from fleet.store.runs import load_run

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SUITE = (ROOT / "benchmarks" / "quickstart.yml").read_text().replace(
    "repetitions: 2", "repetitions: 3")
COUNT_IMAGES = ('<script>addEventListener("load",()=>{const i=[...document.images];'
                "document.body.dataset.images=i.length;document.body.dataset.loaded="
                "i.filter(x=>x.complete&&x.naturalWidth>0).length;});</script></body>")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                  "--virtual-time-budget=5000")


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed (bash scripts/bootstrap installs it)")
    return path


def browse(*args: str) -> str:
    done = subprocess.run([chromium(), *CHROMIUM_FLAGS, *args], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    base = tmp_path_factory.mktemp("report_run")
    suite = base / "quickstart.yml"
    suite.write_text(SUITE)
    store = base / "fleet.sqlite"
    report = start_run(RunRequest(suite, (ROOT / "inventories" / "local.yml",), None, 11, store),
                       on_event=lambda event: None, on_warning=lambda text: None)
    assert report.summary.all_completed
    return store, report.run_id


def test_report_of_a_real_run_renders_in_chromium_with_its_plots(
        real_run: tuple[Path, str], tmp_path: Path) -> None:
    store, run_id = real_run
    out = tmp_path / "report"
    assert main(["report", run_id, "--axis", "block_size=64K,4M", "-o", str(out),
                 "--store", str(store)]) == 0
    page = (out / "index.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert any(s.startswith("metric-") for s in sources)
    assert any(s.startswith("series-") for s in sources)  # the sampler's per-node series
    check = out / "check.html"
    check.write_text(page.replace("</body>", COUNT_IMAGES))
    body = re.search(r"<body[^>]*>", browse("--dump-dom", check.as_uri()))
    assert body is not None
    assert f'data-images="{len(sources)}"' in body.group(0)
    assert f'data-loaded="{len(sources)}"' in body.group(0), body.group(0)
    shot = tmp_path / "shot.png"
    browse(f"--screenshot={shot}", "--window-size=1200,3000", (out / "index.html").as_uri())
    pixels = mpimg.imread(shot)[:, :, :3]
    assert pixels.shape[:2] == (3000, 1200)
    not_white = (pixels.min(axis=2) < 0.9).mean()
    assert not_white > 0.02 and pixels.std() > 0.05  # text, tables and plots, not blank


def test_report_table_is_the_stored_runs_numbers(real_run: tuple[Path, str],
                                                 tmp_path: Path) -> None:
    store, run_id = real_run
    out = tmp_path / "report"
    assert main(["report", run_id, "--axis", "block_size=64K,4M", "-o", str(out),
                 "--store", str(store)]) == 0
    with Store.open(store) as s:
        detail = load_run(s, run_id)
    settings = {c: p for c, _, p in detail.cases}
    stored: dict[tuple[str, str], list[float]] = {}
    for a in detail.attempts:
        for m in a.attempt.measurements:
            if m.metric == "elapsed_seconds" and m.value is not None:
                params = settings[a.attempt.job.case_id]
                size = re.search(r'"block_size": "([^"]+)"', params)
                volume = re.search(r'"volume": "([^"]+)"', params)
                assert size is not None and volume is not None
                stored.setdefault((volume.group(1), size.group(1)), []).append(m.value)
    page = (out / "index.html").read_text()
    table = page.split('data-metric="elapsed_seconds"', 1)[1].split("</table>", 1)[0]
    for row in re.findall(r"<tr><td>([^<]+)</td>(.*?)</tr>", table):
        volume, cells = row
        shown = re.findall(r'data-value="([^"]+)"', cells)
        assert shown == [repr(statistics.median(stored[(volume, size)]))
                         for size in ("64K", "4M")]
    assert len(re.findall(r"<tr><td>", table)) == 2  # volumes 256M and 1G
