"""What `fleet run --pushgateway` pushes per attempt equals what the exporter exports once the
attempt is stored (the real Pushgateway is in tests/integration/test_export_push.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_export_collector import RUN, samples, write_run

from fleet import catalogue as cat
from fleet.errors import FleetError
from fleet.export.prometheus import Selection, exposition_text, push_attempt
from fleet.export.series import attempt_series, sample_line
from fleet.store import Store
from fleet.store.runs import load_run

RESULT_FAMILIES = {e.name for e in cat.SAMPLER} | {cat.WORKLOAD_RESULT.name}


def test_attempt_series_equal_the_exported_results(tmp_path: Path) -> None:
    path = tmp_path / "fleet.sqlite"
    write_run(path)
    with Store.open(path) as store:
        detail = load_run(store, RUN)
        exported = {s for s in samples(exposition_text(store, Selection()))
                    if s[0] in RESULT_FAMILIES}
    pushed = [s for a in detail.attempts
              for s in attempt_series(RUN, "quickstart", a.attempt, "dd_zero_copy")]
    assert samples("".join(sample_line(s) for s in pushed)) == exported
    assert len(pushed) == len(exported) > 0  # the duplicate records_in is left out
    failed = [a.attempt for a in detail.attempts if a.attempt.status != "completed"]
    assert failed and all(attempt_series(RUN, "quickstart", a, "w") == [] for a in failed)


def test_a_push_to_nowhere_is_one_fleet_error_line(tmp_path: Path) -> None:
    path = tmp_path / "fleet.sqlite"
    write_run(path)
    with Store.open(path) as store:
        attempt = next(a.attempt for a in load_run(store, RUN).attempts
                       if a.attempt.status == "completed")
    with pytest.raises(FleetError) as caught:
        push_attempt("http://127.0.0.1:9", RUN, "quickstart", attempt, "dd_zero_copy",
                     timeout_seconds=2.0)
    line = caught.value.line()
    assert line.startswith("http://127.0.0.1:9: cannot push to the pushgateway:")
    assert "\n" not in line
    with pytest.raises(FleetError, match="cannot push to the pushgateway: URL can't contain"):
        push_attempt("http://bad host", RUN, "quickstart", attempt, "dd_zero_copy")


def test_a_gateway_url_with_userinfo_is_shown_without_the_password() -> None:
    from fleet.export.live_push import parse_gateway

    gateway = parse_gateway("http://fleet:s%40cret@127.0.0.1:9091/")
    assert gateway.url == "http://127.0.0.1:9091"
    assert gateway.shown == "http://fleet:***@127.0.0.1:9091"
    assert gateway.credentials == ("fleet", "s@cret")
    assert "s@cret" not in repr(gateway)
    from_env = parse_gateway("https://ci@gw.example:443/base", password="pw")
    assert (from_env.url, from_env.shown, from_env.credentials) == (
        "https://gw.example:443/base", "https://ci:***@gw.example:443/base", ("ci", "pw"))
    for good in ("http://gw-1.example.org", "http://10.0.0.1:9091", "https://[fe80::1%eth0]"):
        assert parse_gateway(good).url == good
    plain = parse_gateway("http://[::1]:9091", password="unused without a user")
    assert (plain.url, plain.shown, plain.credentials) == ("http://[::1]:9091",) * 2 + (None,)


def test_pushes_carry_basic_auth_and_failures_never_show_the_password(tmp_path: Path) -> None:
    """A local HTTP server standing in for a gateway behind basic auth (the real Pushgateway
    with --web.config.file: tests/integration/test_export_push_real.py)."""
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from fleet.execute.events import AttemptFinished, RunStarted
    from fleet.export.live_push import LivePusher, parse_gateway

    seen: list[str | None] = []

    class Gateway(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.headers.get("Authorization"))
            good = "Basic " + base64.b64encode(b"fleet:s3cret").decode()
            self.send_response(200 if seen[-1] == good else 401)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    path = tmp_path / "fleet.sqlite"
    write_run(path)
    with Store.open(path) as store:
        attempt = next(a.attempt for a in load_run(store, RUN).attempts
                       if a.attempt.status == "completed")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        for password, warned in (("s3cret", False), ("wrong", True)):
            warnings: list[str] = []
            pusher = LivePusher(parse_gateway(f"http://fleet:{password}@127.0.0.1:{port}"),
                                warnings.append)
            pusher.event(RunStarted(RUN, "quickstart", 7, (), 1, 1, False, str(path)))
            pusher.event(AttemptFinished(attempt, None))
            assert bool(warnings) == warned
            text = " ".join([*warnings, pusher.summary()])
            assert password not in text and f"http://fleet:***@127.0.0.1:{port}" in text
            if warned:
                assert f"http://127.0.0.1:{port}: pushgateway refused the results: HTTP 401" \
                    in warnings[0]
    finally:
        server.shutdown()
        server.server_close()
    assert seen[0] == "Basic " + base64.b64encode(b"fleet:s3cret").decode()
