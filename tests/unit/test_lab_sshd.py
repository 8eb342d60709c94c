"""`fleet lab up` on a freshly booted machine: /run is a tmpfs, so sshd's privilege separation
directory is missing until it is created, and `sshd -t` (the config check) needs it too."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from fleet.lab import sshd
from fleet.lab.state import HostRecord


def host(tmp_path: Path) -> HostRecord:
    return HostRecord("lab0", "fleet-lab0", "fl0r", "fl0p", "198.18.0.1", "198.18.0.2", 30,
                      22, str(tmp_path / "sshd_config"), str(tmp_path / "key"),
                      str(tmp_path / "sshd.pid"), str(tmp_path / "sshd.log"))


def test_the_privsep_dir_exists_before_the_config_check(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    privsep = tmp_path / "run" / "sshd"  # stands in for /run/sshd (never touched here)
    privsep.parent.mkdir()
    monkeypatch.setattr(sshd, "PRIVSEP_DIR", privsep)
    seen: list[tuple[list[str], bool]] = []

    def fake_run(argv: list[str], **kwargs: Any) -> None:
        seen.append((argv, privsep.is_dir()))

    monkeypatch.setattr(sshd, "run", fake_run)
    previous = os.umask(0o002)  # a umask that would leave it group-writable (sshd refuses)
    try:
        sshd.validate(host(tmp_path))
    finally:
        os.umask(previous)
    ((argv, existed),) = seen
    assert argv[1:3] == ["-t", "-f"] and existed
    assert stat.S_IMODE(privsep.stat().st_mode) == 0o755


def test_an_existing_privsep_dir_is_left_as_it_is(tmp_path: Path) -> None:
    existing = tmp_path / "sshd"
    existing.mkdir(mode=0o711)
    existing.chmod(0o711)
    sshd.ensure_privsep_dir(existing)
    assert stat.S_IMODE(existing.stat().st_mode) == 0o711
