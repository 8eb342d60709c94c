"""A small fake Grafana on loopback: the HTTP API endpoints `fleet dashboards push` uses,
as Grafana documents them (and as grafana-client calls them).

- ``GET /api/frontend/settings``: ``{"buildInfo": {...}}`` (grafana-client's health check)
- ``GET /api/folders``: ``[{"id", "uid", "title"}]``; ``POST /api/folders`` ``{"title",
  "uid"}``: the new folder, 409 if the uid or title exists
- ``GET /api/dashboards/uid/:uid``: ``{"dashboard": {... "id", "version"}, "meta":
  {"folderUid", "version"}}``, 404 ``{"message": "Dashboard not found"}``
- ``POST /api/dashboards/db`` ``{"dashboard", "folderUid", "overwrite", "message"}``:
  ``{"id", "uid", "url", "status": "success", "version"}``; 412 when the uid exists and
  overwrite is false; 400 when the folder does not exist
- ``GET /api/search?type=dash-db``: ``[{"uid", "title", "folderUid", "type"}]``

Every request must carry ``Authorization: Bearer <token>``, else 401
``{"message": "Unauthorized"}`` (Grafana's answer to a bad or missing token).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class GrafanaState:
    token: str
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    next_id: int = 1

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: the tests read them from the fake's record."""

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"null")

    def _authorised(self, method: str) -> bool:
        state = self.server.state
        auth = self.headers.get("Authorization")
        state.requests.append((method, self.path, auth))
        if auth != f"Bearer {state.token}":
            self._send(401, {"message": "Unauthorized"})
            return False
        return True

    def do_GET(self) -> None:
        if not self._authorised("GET"):
            return
        state, path = self.server.state, self.path.split("?", 1)[0]
        if path == "/api/frontend/settings":
            self._send(200, {"buildInfo": {"version": "11.6.0", "edition": "fake"}})
        elif path == "/api/folders":
            self._send(200, list(state.folders.values()))
        elif path.startswith("/api/dashboards/uid/"):
            found = state.dashboards.get(path.rsplit("/", 1)[1])
            if found is None:
                self._send(404, {"message": "Dashboard not found"})
            else:
                self._send(200, {"dashboard": found["dashboard"],
                                 "meta": {"folderUid": found["folderUid"],
                                          "version": found["dashboard"]["version"]}})
        elif path == "/api/search":
            self._send(200, [{"uid": uid, "title": d["dashboard"].get("title"),
                              "folderUid": d["folderUid"], "type": "dash-db"}
                             for uid, d in state.dashboards.items()])
        else:
            self._send(404, {"message": "Not found"})

    def do_POST(self) -> None:
        if not self._authorised("POST"):
            return
        state, body = self.server.state, self._body()
        if self.path == "/api/folders":
            uid = body.get("uid") or f"f{state.new_id()}"
            if uid in state.folders or any(f["title"] == body["title"]
                                           for f in state.folders.values()):
                self._send(409, {"message": "a folder with the same name already exists"})
                return
            state.folders[uid] = {"id": state.new_id(), "uid": uid, "title": body["title"]}
            self._send(200, state.folders[uid])
        elif self.path == "/api/dashboards/db":
            self._save_dashboard(body)
        else:
            self._send(404, {"message": "Not found"})

    def _save_dashboard(self, body: dict[str, Any]) -> None:
        state = self.server.state
        model, folder = dict(body["dashboard"]), body.get("folderUid", "")
        if folder and folder not in state.folders:
            self._send(400, {"message": "folder not found"})
            return
        old = state.dashboards.get(model["uid"])
        if old is not None and not body.get("overwrite"):
            self._send(412, {"message": "A dashboard with the same uid already exists",
                             "status": "name-exists"})
            return
        model["id"] = old["dashboard"]["id"] if old else state.new_id()
        model["version"] = old["dashboard"]["version"] + 1 if old else 1
        state.dashboards[model["uid"]] = {"dashboard": model, "folderUid": folder}
        self._send(200, {"id": model["id"], "uid": model["uid"], "status": "success",
                         "url": f"/d/{model['uid']}", "version": model["version"]})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: GrafanaState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


@contextmanager
def fake_grafana(token: str) -> Iterator[tuple[str, GrafanaState]]:
    """A fake Grafana on a free loopback port: (base URL, its state); always shut down."""
    state = GrafanaState(token)
    server = _Server(state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
