"""Push dashboards to a Grafana through its HTTP API (grafana-client; the only module that
imports it).

Endpoints used (Grafana HTTP API): ``GET /api/frontend/settings`` (reachability; what
grafana-client's ``health.check`` reads), ``GET /api/folders`` and ``POST /api/folders``
(find or create the folder), ``GET /api/dashboards/uid/:uid`` (what is there now) and
``POST /api/dashboards/db`` with ``overwrite: true`` (create or replace). A dashboard whose
stored model and folder already equal the new one is not written again ("unchanged").

The token is passed to grafana-client (``Authorization: Bearer``) and to nothing else: no
message, error or return value of this module contains it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError

from fleet.catalogue import sanitise
from fleet.errors import FleetError

Change = Literal["created", "updated", "unchanged"]
VOLATILE = ("id", "version")  # fields Grafana assigns itself
MAX_UID_CHARS = 40


@dataclass(frozen=True)
class PushedDashboard:
    uid: str
    title: str
    change: Change


@dataclass(frozen=True)
class PushReport:
    folder_uid: str
    folder_title: str
    folder_created: bool
    dashboards: tuple[PushedDashboard, ...]


def folder_uid(title: str) -> str:
    """A stable folder uid for a folder title (``fleet`` -> ``fleet``)."""
    return sanitise(title).replace("_", "-")[:MAX_UID_CHARS]


def _comparable(model: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in model.items() if k not in VOLATILE}


def _error(exc: Exception, url: str) -> FleetError:
    if isinstance(exc, GrafanaUnauthorizedError):
        return FleetError("Grafana rejected the token (HTTP 401)", where=url,
                          hint="give a service-account token with the Editor role in "
                               "$FLEET_GRAFANA_TOKEN or --token-file")
    if isinstance(exc, GrafanaException) and exc.status_code:
        return FleetError(f"Grafana answered HTTP {exc.status_code}: "
                          f"{' '.join(str(exc.message).split())[:200]}", where=url,
                          hint="check the URL, the token's role and the folder name")
    return FleetError(f"cannot reach Grafana: {type(exc).__name__}", where=url,
                      hint="check --url (scheme, host, port) and that Grafana is running")


class _Pusher:
    def __init__(self, url: str, token: str, timeout_seconds: float) -> None:
        self.url = url
        self.api = GrafanaApi.from_url(url, credential=token, timeout=timeout_seconds)

    def folder(self, title: str) -> tuple[str, bool]:
        for found in self.api.folder.get_all_folders():
            if found.get("title") == title:
                return str(found["uid"]), False
        created = self.api.folder.create_folder(title, uid=folder_uid(title))
        return str(created.get("uid", folder_uid(title))), True

    def current(self, uid: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.api.dashboard.get_dashboard(uid)
        except GrafanaClientError as exc:
            if exc.status_code == 404:
                return None
            raise
        return found

    def push(self, model: dict[str, Any], folder: str) -> Change:
        existing = self.current(str(model["uid"]))
        if existing is not None:
            same_folder = existing.get("meta", {}).get("folderUid") == folder
            if same_folder and _comparable(existing.get("dashboard", {})) == _comparable(model):
                return "unchanged"
        body = {"dashboard": {**_comparable(model), "id": None}, "folderUid": folder,
                "overwrite": True, "message": "fleet dashboards push"}
        self.api.dashboard.update_dashboard(body)
        return "created" if existing is None else "updated"


def push_dashboards(url: str, token: str, models: Sequence[dict[str, Any]], *, folder: str,
                    timeout_seconds: float = 10.0) -> PushReport:
    """Create ``folder`` if missing and write every model into it, idempotently."""
    try:
        pusher = _Pusher(url.rstrip("/"), token, timeout_seconds)
        pusher.api.health.check()
        uid, created = pusher.folder(folder)
        pushed = tuple(PushedDashboard(str(m["uid"]), str(m.get("title", "")),
                                       pusher.push(m, uid)) for m in models)
    except (GrafanaException, OSError) as exc:
        raise _error(exc, url) from None
    return PushReport(uid, folder, created, pushed)
