"""Shared helpers for integration tests against a real Prometheus (and Pushgateway).

Each process is started on a free loopback port with its own config and data directory under
the test's tmp_path, and always stopped by the caller's fixture.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = "/usr/bin/prometheus"
PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll(what: str, probe: Callable[[], T | None], timeout_seconds: float = 60.0) -> T:
    """probe() until it returns something; fail with ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_seconds:.0f} s waiting for {what}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> int:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)
    return int(process.returncode)


def fleet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleet", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=300, check=False)


@dataclass(frozen=True)
class Prometheus:
    url: str

    def api(self, path: str, **params: str) -> Any:
        q = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{q}", timeout=10) as response:
            data = json.load(response)
        assert data["status"] == "success", data
        return data["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=promql)["result"]
        return result


def start_prometheus(tmp_path: Path, target: str, *, rule_files: Sequence[Path] = (),
                     honor_labels: bool = False) -> tuple[subprocess.Popen[bytes], Prometheus]:
    """Prometheus scraping ``target`` (host:port) every second, job ``fleet``."""
    config = tmp_path / "prometheus.yml"
    rules = "".join(f"  - {path}\n" for path in rule_files)
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        + (f"rule_files:\n{rules}" if rules else "")
        + "scrape_configs:\n"
        "  - job_name: fleet\n"
        "    scrape_interval: 1s\n"
        "    scrape_timeout: 1s\n"
        + ("    honor_labels: true\n" if honor_labels else "")
        + f"    static_configs: [{{targets: ['{target}']}}]\n")
    return launch_prometheus(tmp_path, free_port())


def launch_prometheus(home: Path, port: int, *flags: str
                      ) -> tuple[subprocess.Popen[bytes], Prometheus]:
    """The Debian prometheus on ``home``/prometheus.yml and ``home``/tsdb, logging to
    ``home``/prometheus.log, listening on 127.0.0.1:``port``."""
    log = (home / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={home / 'prometheus.yml'}",
         f"--storage.tsdb.path={home / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
         "--log.level=warn", *flags],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return process, Prometheus(f"http://127.0.0.1:{port}")


@contextmanager
def ready_prometheus(process: subprocess.Popen[bytes], server: Prometheus
                     ) -> Iterator[Prometheus]:
    """``server`` once it answers /-/ready; stopped on the way out."""
    try:
        poll("prometheus /-/ready", lambda: ready(server.url, process, "prometheus"))
        yield server
    finally:
        stop(process)


def ready(url: str, process: subprocess.Popen[bytes], name: str, *,
          auth: bool = False) -> bool | None:
    """True once GET url/-/ready answers 200 (``auth``: or 401, asking for credentials);
    fails the test if the process died."""
    if process.poll() is not None:
        pytest.fail(f"{name} exited with {process.returncode} before it was ready")
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return True if response.status == 200 else None
    except urllib.error.HTTPError as exc:
        return True if auth and exc.code == 401 else None
    except OSError:
        return None


def quickstart_run(store: Path, *extra: str) -> dict[str, Any]:
    """A real quickstart run into ``store`` (extra: more `fleet run` arguments); returns
    `fleet show --json` of it (and the run's stderr under "_stderr")."""
    done = fleet("run", "benchmarks/quickstart.yml", "-i", "inventories/local.yml",
                 "--store", str(store), *extra)
    assert done.returncode == 0, done.stderr
    runs = json.loads(fleet("runs", "--json", "--store", str(store)).stdout)["runs"]
    shown = fleet("show", runs[0]["run_id"], "--json", "--store", str(store))
    assert shown.returncode == 0, shown.stderr
    detail: dict[str, Any] = json.loads(shown.stdout)
    detail["_stderr"] = done.stderr
    return detail


@contextmanager
def serving(store: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`fleet export serve` of ``store`` on a free loopback port: (host:port, process)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fleet", "export", "serve", "--listen", "127.0.0.1:0",
         "--store", str(store)], cwd=ROOT, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()  # "serving http://127.0.0.1:PORT/metrics (...)"
        assert line.startswith("serving http://127.0.0.1:"), line + process.stderr.read()
        yield line.split("http://", 1)[1].split("/", 1)[0], process
    finally:
        stop(process, signal.SIGINT)


@contextmanager
def prometheus_on(home: Path, target: str, *, rule_files: Sequence[Path] = (),
                  honor_labels: bool = False) -> Iterator[Prometheus]:
    """A ready Prometheus in ``home`` scraping ``target``; always stopped."""
    assert shutil.which(PROMETHEUS), "prometheus missing: run scripts/bootstrap"
    home.mkdir(exist_ok=True)
    with ready_prometheus(*start_prometheus(home, target, rule_files=rule_files,
                                            honor_labels=honor_labels)) as server:
        yield server


@contextmanager
def pushgateway_on(home: Path, web_config: Path | None = None) -> Iterator[str]:
    """A ready Pushgateway on a free loopback port, persisting in ``home``: yields host:port.
    ``web_config``: its --web.config.file (e.g. basic_auth_users)."""
    assert shutil.which(PUSHGATEWAY), "prometheus-pushgateway missing: run scripts/bootstrap"
    home.mkdir(exist_ok=True)
    address = f"127.0.0.1:{free_port()}"
    log = (home / "pushgateway.log").open("wb")
    flags = [f"--web.config.file={web_config}"] if web_config is not None else []
    process = subprocess.Popen(
        [PUSHGATEWAY, f"--web.listen-address={address}",
         f"--persistence.file={home / 'persistence'}", "--log.level=warn", *flags],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        poll("pushgateway /-/ready", lambda: ready(f"http://{address}", process, "pushgateway",
                                                    auth=web_config is not None))
        yield address
    finally:
        stop(process)


# ---- remote write and backfill (fleet export import) -----------------------------------------

PROMTOOL = "/usr/bin/promtool"


def query_at(prometheus: Prometheus, promql: str, at_unix_seconds: float) -> list[dict[str, Any]]:
    """An instant query evaluated at a past time (imported samples carry their own times)."""
    result: list[dict[str, Any]] = prometheus.api(
        "query", query=promql, time=f"{at_unix_seconds:.3f}")["result"]
    return result


@contextmanager
def receiving_prometheus(home: Path, *, receiver: bool = True,
                         out_of_order_window: str | None = "30d",
                         target: str | None = None,
                         rule_files: Sequence[Path] = ()) -> Iterator[Prometheus]:
    """A ready Prometheus in ``home`` accepting remote writes at ``{url}/api/v1/write`` (unless
    ``receiver`` is False), with ``out_of_order_time_window`` set (None: unset, Prometheus'
    default), scraping itself every second (so its head block reaches "now") and ``target``
    (host:port, job ``fleet``) if given; always stopped."""
    assert shutil.which(PROMETHEUS), "prometheus missing: run scripts/bootstrap"
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    rules = "".join(f"  - {path}\n" for path in rule_files)
    config = home / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        + (f"storage: {{tsdb: {{out_of_order_time_window: {out_of_order_window}}}}}\n"
           if out_of_order_window else "")
        + (f"rule_files:\n{rules}" if rules else "")
        + "scrape_configs:\n"
        f"  - {{job_name: prometheus, static_configs: [{{targets: ['127.0.0.1:{port}']}}]}}\n"
        + (f"  - {{job_name: fleet, scrape_timeout: 1s, static_configs: [{{targets: "
           f"['{target}']}}]}}\n" if target else ""))
    flags = ["--web.enable-remote-write-receiver"] if receiver else []
    with ready_prometheus(*launch_prometheus(home, port, *flags)) as server:
        yield server


@contextmanager
def backfilled_prometheus(home: Path, openmetrics_file: Path) -> Iterator[Prometheus]:
    """`promtool tsdb create-blocks-from openmetrics` of the file into a fresh data dir, then a
    ready Prometheus on that dir (no scrapes); always stopped."""
    assert shutil.which(PROMTOOL), "promtool missing: run scripts/bootstrap"
    home.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics",
                           str(openmetrics_file), str(home / "tsdb")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    (home / "prometheus.yml").write_text("scrape_configs: []\n")
    with ready_prometheus(*launch_prometheus(home, free_port())) as server:
        yield server
