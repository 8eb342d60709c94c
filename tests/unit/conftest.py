"""Shared fixtures for unit tests: the captured-data corpus beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def corpus_path() -> Path:
    """``$FLEET_CORPUS`` or ``<repo>/../shared/corpus`` (CI clones shared/ beside the repo)."""
    override = os.environ.get("FLEET_CORPUS")
    return Path(override) if override else (REPO / ".." / "shared" / "corpus").resolve()


@pytest.fixture(scope="session")
def corpus() -> Path:
    path = corpus_path()
    if not (path / "INDEX.md").is_file():
        pytest.fail(f"corpus not found at {path}: set FLEET_CORPUS or put shared/ beside the repo")
    return path


def extract_ttar(archive: Path, dest: Path) -> None:
    """Unpack a prometheus ``ttar`` archive (``Path:``/``Lines:``/``SymlinkTo:`` records)."""
    lines = archive.read_text().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith("Directory: "):
            (dest / line[len("Directory: "):]).mkdir(parents=True, exist_ok=True)
        elif line.startswith("Path: "):
            target = dest / line[len("Path: "):]
            target.parent.mkdir(parents=True, exist_ok=True)
            kind, _, value = lines[i].partition(": ")
            i += 1
            if kind == "SymlinkTo":
                target.symlink_to(value)
                continue
            assert kind == "Lines", f"{archive}:{i}: unexpected {lines[i - 1]!r}"
            body = lines[i:i + int(value)]
            i += int(value)
            text = "".join(b + "\n" for b in body).replace("NULLBYTE", "\0")
            if text.endswith("EOF\n"):
                text = text[: -len("EOF\n")]
            target.write_text(text)


@pytest.fixture(scope="session")
def node_exporter_sys_root(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """node_exporter's sys.ttar.full unpacked: ``<root>/sys/...`` (2 sockets, 3 NUMA nodes)."""
    root = tmp_path_factory.mktemp("node_exporter")
    extract_ttar(corpus / "node_exporter" / "fixtures" / "sys.ttar.full", root)
    return root


@pytest.fixture(scope="session")
def procfs_root(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """prometheus/procfs fixtures.ttar.full unpacked: ``<root>/proc``, ``<root>/sys``."""
    root = tmp_path_factory.mktemp("procfs")
    extract_ttar(corpus / "procfs" / "fixtures.ttar.full", root)
    return root / "fixtures"
