"""`fleet run --pushgateway URL`: each completed attempt's results pushed as it finishes.

A ``LivePusher`` wraps the run's event sink. Pushing never stops the run: the results are in
the store whatever happens to the gateway. The first failed push gives one warning (through
``on_warning``), later ones are only counted; ``summary()`` is the final one-line account.

The URL is checked before the run starts (``parse_gateway``: http or https, a host, no query).
A user and password in it (``http://USER:PASSWORD@HOST:9091``), or a user in it and the
password from ``$FLEET_PUSHGATEWAY_PASSWORD`` (read by the CLI), are sent as HTTP basic auth;
every message shows the URL with the password as ``***``.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fleet.errors import ConfigError, FleetError
from fleet.execute.events import AttemptFinished, RunEvent, RunStarted
from fleet.export.prometheus import push_attempt
from fleet.export.store_reader import open_read_only
from fleet.store.export_reads import read_static

_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)?[^/?#]*@")
_REDACTED = "***"
_HOST = re.compile(r"[a-z0-9]([a-z0-9._-]*[a-z0-9])?|[0-9a-f:.]*:[0-9a-f:.]*(%[\w.-]+)?")


@dataclass(frozen=True)
class Gateway:
    """A Pushgateway: where to push (no userinfo), how to show it, whom to authenticate as."""

    url: str
    shown: str
    credentials: tuple[str, str] | None = field(default=None, repr=False)


def redact(text: str) -> str:
    """``text`` with any userinfo (``user:password@``) replaced by ``***@``."""
    return _USERINFO.sub(lambda m: f"{m.group(1) or ''}{_REDACTED}@", text.strip(), 1)


def parse_gateway(text: str, *, password: str | None = None) -> Gateway:
    """The --pushgateway URL, checked; ``password`` is used when the URL names a user and no
    password. ConfigError (which never shows a password) when it is not an http(s) URL."""
    def refuse(what: str) -> ConfigError:
        return ConfigError(f"--pushgateway {redact(text)!r}: {what}", where="--pushgateway",
                           hint="give the gateway's URL, e.g. http://127.0.0.1:9091 (basic auth: "
                                "http://USER@HOST:9091 and $FLEET_PUSHGATEWAY_PASSWORD)")

    try:
        parts = urllib.parse.urlsplit(text.strip())
        if parts.port == 0:  # .port: ValueError when not a number from 0 to 65535
            raise ValueError("port 0")
    except ValueError as exc:
        raise refuse(f"not a URL ({exc})") from None
    if any(c.isspace() or not c.isprintable() for c in text.strip()):
        raise refuse("not a URL (it has spaces or control characters)")
    if parts.scheme not in ("http", "https"):
        raise refuse("not an http:// or https:// URL")
    if not parts.hostname:
        raise refuse("the URL names no host")
    if _HOST.fullmatch(parts.hostname) is None:
        raise refuse(f"{parts.hostname!r} is not a host name or address")
    if parts.query or parts.fragment:
        raise refuse("the URL has a query or fragment (fleet adds /metrics/job/...)")
    hostport = parts.netloc.rpartition("@")[2]
    url = urllib.parse.urlunsplit((parts.scheme, hostport, parts.path.rstrip("/"), "", ""))
    if parts.username is None:
        return Gateway(url, url)
    user = urllib.parse.unquote(parts.username)
    secret = urllib.parse.unquote(parts.password) if parts.password is not None else password
    shown_user = parts.username + (f":{_REDACTED}" if secret is not None else "")
    shown = urllib.parse.urlunsplit((parts.scheme, f"{shown_user}@{hostport}",
                                     parts.path.rstrip("/"), "", ""))
    return Gateway(url, shown, (user, secret or ""))


class LivePusher:
    """Pushes every completed attempt of the run to ``gateway``; not thread-safe (the run
    calls its event sink from one thread)."""

    def __init__(self, gateway: Gateway, on_warning: Callable[[str], None]) -> None:
        self._gateway = gateway
        self._warn = on_warning
        self._run: tuple[str, str] | None = None  # (run_id, suite)
        self._workloads: dict[str, str] = {}  # case_id -> workload
        self.pushed = 0
        self.failed = 0
        self.series = 0

    def event(self, event: RunEvent) -> None:
        if isinstance(event, RunStarted):
            self._run = (event.run_id, event.suite)
            self._workloads = self._read_workloads(Path(event.store_path), event.run_id)
        elif isinstance(event, AttemptFinished) and self._run is not None:
            self._push(event)

    def _read_workloads(self, store_path: Path, run_id: str) -> dict[str, str]:
        try:
            with open_read_only(store_path) as store:
                cases = read_static(store, run_id).cases
        except FleetError as exc:
            self._warn(f"pushgateway: workload names unknown, pushed with workload=\"\": "
                       f"{exc.line()}")
            return {}
        return {case_id: workload for case_id, workload, _ in cases}

    def _push(self, event: AttemptFinished) -> None:
        assert self._run is not None
        run_id, suite = self._run
        attempt = event.attempt
        try:
            count = push_attempt(self._gateway.url, run_id, suite, attempt,
                                 self._workloads.get(attempt.job.case_id, ""),
                                 credentials=self._gateway.credentials)
        except FleetError as exc:
            if self.failed == 0:
                self._warn(f"{exc.line()}; the run goes on, later failures are only counted")
            self.failed += 1
            return
        if count:
            self.pushed += 1
            self.series += count

    def summary(self) -> str:
        return (f"pushgateway {self._gateway.shown}: {self.pushed} attempt(s) pushed "
                f"({self.series} series), {self.failed} push(es) failed")
