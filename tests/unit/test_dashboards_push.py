"""`fleet dashboards push` against a fake Grafana (tests/unit/fake_grafana.py): folder created
once, dashboards created, then unchanged, then updated; the token reaches the server and no
output; bad input is one line and exit 2."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_grafana import GrafanaState, fake_grafana

from fleet.cli import main
from fleet.export.grafana.build import dashboard_models

TOKEN = "glsa_s3cr3t-T0KEN-for-tests_only"
UIDS = sorted(m["uid"] for m in dashboard_models())


@pytest.fixture
def grafana() -> Iterator[tuple[str, GrafanaState]]:
    with fake_grafana(TOKEN) as served:
        yield served


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_GRAFANA_TOKEN", TOKEN)


def push(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["dashboards", "push", *args])
    out, err = capsys.readouterr()
    assert TOKEN not in out and TOKEN not in err
    return code, out, err


def one_error_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("fleet: error: "), err
    return err


@pytest.mark.usefixtures("token_env")
def test_push_creates_then_changes_nothing_then_updates(
        grafana: tuple[str, GrafanaState], capsys: pytest.CaptureFixture[str]) -> None:
    url, state = grafana
    code, out, err = push(capsys, "--url", url, "--folder", "fleet lab")
    assert code == 0 and err == "", err
    assert out.splitlines()[0] == "folder 'fleet lab' (uid fleet-lab): created"
    assert out.splitlines()[-1] == (f"5 dashboard(s) pushed to {url}: 5 created, 0 updated, "
                                    "0 unchanged")
    assert sorted(state.dashboards) == UIDS
    assert {d["folderUid"] for d in state.dashboards.values()} == {"fleet-lab"}
    models = {m["uid"]: m for m in dashboard_models()}
    for uid, stored in state.dashboards.items():
        assert {k: v for k, v in stored["dashboard"].items() if k not in ("id", "version")} \
            == models[uid]
    # the token went to the server, in the header grafana-client sets, on every request
    assert state.requests and {auth for _, _, auth in state.requests} == {f"Bearer {TOKEN}"}

    code, out, _ = push(capsys, "--url", url, "--folder", "fleet lab")
    assert code == 0
    assert out.splitlines()[0] == "folder 'fleet lab' (uid fleet-lab): exists"
    assert out.splitlines()[-1].endswith("0 created, 0 updated, 5 unchanged")
    assert len(state.folders) == 1
    assert all(d["dashboard"]["version"] == 1 for d in state.dashboards.values())

    state.dashboards["fleet-tlb-shootdowns"]["dashboard"]["title"] = "edited by hand"
    code, out, _ = push(capsys, "--url", url, "--folder", "fleet lab")
    assert code == 0
    assert "updated   fleet-tlb-shootdowns  fleet: TLB shootdowns" in out.splitlines()
    assert out.splitlines()[-1].endswith("0 created, 1 updated, 4 unchanged")
    assert state.dashboards["fleet-tlb-shootdowns"]["dashboard"]["title"] == \
        "fleet: TLB shootdowns"


@pytest.mark.usefixtures("token_env")
def test_push_sets_the_datasource(grafana: tuple[str, GrafanaState],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    url, state = grafana
    code, _, _ = push(capsys, "--url", url, "--datasource-uid", "prom-1")
    assert code == 0
    for stored in state.dashboards.values():
        (variable,) = [v for v in stored["dashboard"]["templating"]["list"]
                       if v["name"] == "datasource"]
        assert variable["current"]["value"] == "prom-1"
    code, out, _ = push(capsys, "--url", url, "--datasource-uid", "prom-2")
    assert code == 0 and out.splitlines()[-1].endswith("0 created, 5 updated, 0 unchanged")


def test_the_token_can_come_from_a_file(grafana: tuple[str, GrafanaState], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEET_GRAFANA_TOKEN", raising=False)
    url, _state = grafana
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    code, out, _ = push(capsys, "--url", url, "--token-file", str(token_file))
    assert code == 0 and "5 created" in out


def test_a_rejected_token_is_one_line(grafana: tuple[str, GrafanaState],
                                      capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_GRAFANA_TOKEN", "wrong-token")
    # also: the push argument parser takes no abbreviation of --token-file
    url, state = grafana
    code, _, err = push(capsys, "--url", url)
    assert code == 2
    assert "Grafana rejected the token (HTTP 401)" in one_error_line(err)
    assert "wrong-token" not in err
    assert state.dashboards == {}


@pytest.mark.usefixtures("token_env")
def test_an_unreachable_grafana_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connection refused
        code, _, err = push(capsys, "--url", f"http://127.0.0.1:{port}", "--timeout", "3")
    assert code == 2
    assert f"http://127.0.0.1:{port}: cannot reach Grafana" in one_error_line(err)


def test_a_missing_token_is_one_line(capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEET_GRAFANA_TOKEN", raising=False)
    code, _, err = push(capsys, "--url", "http://127.0.0.1:1")
    assert code == 2 and "no Grafana API token" in one_error_line(err)


def test_an_empty_or_missing_token_file_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").write_text("\n")
    code, _, err = push(capsys, "--url", "http://127.0.0.1:1", "--token-file",
                        str(tmp_path / "empty"))
    assert code == 2 and "the token file is empty" in one_error_line(err)
    code, _, err = push(capsys, "--url", "http://127.0.0.1:1", "--token-file",
                        str(tmp_path / "nope"))
    assert code == 2 and "cannot read the token file" in one_error_line(err)


@pytest.mark.usefixtures("token_env")
def test_a_url_without_scheme_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = push(capsys, "--url", "grafana:3000")
    assert code == 2 and "is not an http(s) URL" in one_error_line(err)


def test_there_is_no_token_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["dashboards", "push", "--url", "http://127.0.0.1:1", "--token", TOKEN])
    assert exited.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err
