"""House rules that the code must keep (walks the ASTs of fleet/)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "fleet"
MODULES = sorted(PACKAGE.rglob("*.py"))

# each third-party I/O library is imported by exactly one adapter module (or package)
ADAPTERS = {
    "paramiko": "transport/ssh/",
    "ansible": "inventory/",
    "ansible_runner": "provision.py",
    "prometheus_client": "export/prometheus.py",
    "grafana_client": "export/grafana.py",
    "cramjam": "export/remote_write.py",
    "matplotlib": "report/plots.py",
    "otava": "report/changes.py",
}
PURE = ["model.py", "codec.py", "errors.py", "runs.py", "facts/parsers.py", "facts/numactl.py",
        "facts/tree.py", "facts/build.py", "facts/probe.py", "matrix.py", "schedule.py",
        "knobs.py", "workloads/base.py", "workloads/command.py", "workloads/sleep.py",
        "workloads/located.py",
        "agent/protocol.py", "agent/protocol_decode.py", "guests/qemu.py",
        "guests/topologies.py", "derive.py",
        "collectors/vmstat.py", "collectors/interrupts.py", "collectors/nodes.py",
        "collectors/numa_maps.py", "collectors/proc_status.py", "collectors/kvm_debugfs.py",
        "collectors/kvm_stats.py", "collectors/kmsg.py", "sampling.py", "sampling_decode.py",
        "sampling_derive.py", "sampling_config.py",
        "export/dashboards.py", "export/dashboards_panels.py", "export/dashboards_series.py",
        "export/dashboards_build.py", "export/host_series.py",
        "export/remote_write_codec.py", "report/model.py", "report/assemble.py",
        "report/series.py", "report/html.py", "report/changes.py",
        "compare/stats.py", "compare/config.py", "compare/fingerprint.py", "compare/select.py",
        "compare/engine.py", "compare/decide.py", "compare/output.py",
        "compare/history_check.py", "report/likeness.py"]
IO_LIBS = {"paramiko", "ansible", "ansible_runner", "prometheus_client", "grafana_client",
           "subprocess", "socket", "sqlite3", "requests", "rich"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def rel(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def test_modules_exist() -> None:
    assert len(MODULES) > 10


@pytest.mark.parametrize("library", sorted(ADAPTERS))
def test_each_io_library_has_one_adapter(library: str) -> None:
    users = [rel(p) for p in MODULES if library in imports(p)]
    adapter = ADAPTERS[library]  # one module, or one package (a name ending in '/')
    assert all(u == adapter or (adapter.endswith("/") and u.startswith(adapter)) for u in users)


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_io_library(module: str) -> None:
    path = PACKAGE / module
    assert path.exists(), module
    assert not imports(path) & IO_LIBS


def test_only_cli_prints() -> None:
    offenders = []
    for path in MODULES:
        if rel(path).startswith("cli"):  # the cli/ package
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id in {"print", "exit", "input"}:
                offenders.append(f"{rel(path)}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr in {"stdout", "stderr", "exit"} \
                    and isinstance(node.value, ast.Name) and node.value.id == "sys":
                offenders.append(f"{rel(path)}:{node.lineno}")
    assert offenders == []


def test_modules_are_small() -> None:
    big = [rel(p) for p in MODULES if len(p.read_text().splitlines()) > 400]
    assert big == []


def test_no_util_module() -> None:
    assert not [p for p in MODULES if p.stem in {"util", "utils", "helpers"}]


def test_test_file_names_are_unique() -> None:
    """pytest's default import mode cannot collect two test modules with one basename."""
    tests = Path(__file__).resolve().parents[1]
    names = [p.name for p in tests.rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
