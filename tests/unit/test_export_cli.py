"""`fleet export text|serve` on bad input: one line on stderr, exit 2."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from test_export_collector import RUN, write_run

from fleet.cli import main
from fleet.cli.export import DEFAULT_PORT, is_loopback, parse_listen
from fleet.errors import ConfigError


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.sqlite"
    write_run(path)
    return path


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fleet: error: "), err
    return err


def test_export_text_prints_the_run(store_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "text", RUN, "--store", str(store_path)]) == 0
    out = capsys.readouterr().out
    assert f'fleet_jobs{{run_id="{RUN}",suite="quickstart"}} 16.0' in out
    assert out.endswith("\n") and "# TYPE fleet_workload_result gauge" in out


def test_unknown_run_id(store_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "text", "r-nope", "--store", str(store_path)]) == 2
    err = one_error_line(capsys)
    assert "no run 'r-nope' in the store" in err and RUN in err


def test_missing_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none" / "fleet.sqlite"
    for argv in (["export", "text"], ["export", "serve", "--listen", "127.0.0.1:0"]):
        assert main([*argv, "--store", str(missing)]) == 2
        assert f"no fleet store at {missing}" in one_error_line(capsys)
    assert not missing.parent.exists()


def test_port_in_use(store_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code = main(["export", "serve", "--listen", f"127.0.0.1:{port}",
                     "--store", str(store_path)])
    assert code == 2
    err = one_error_line(capsys)
    assert f"127.0.0.1:{port}: cannot listen: Address already in use" in err
    assert "--listen" in err


def test_bad_listen_and_selection(store_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "serve", "--listen", "localhost:http", "--store",
                 str(store_path)]) == 2
    assert "is not [HOST:]PORT" in one_error_line(capsys)
    axes = [a for n in range(5) for a in ("--axis-label", f"a{n}")]
    assert main(["export", "text", "--store", str(store_path), *axes]) == 2
    assert "at most 4" in one_error_line(capsys)


def test_listen_parsing_and_loopback() -> None:
    assert parse_listen(None) == ("127.0.0.1", DEFAULT_PORT)
    assert parse_listen("9000") == ("127.0.0.1", 9000)
    assert parse_listen("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    with pytest.raises(ConfigError):
        parse_listen("127.0.0.1:99999")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")
