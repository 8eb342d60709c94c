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


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _fleet_imports(path: Path, known: set[str]) -> set[str]:
    """The fleet modules ``path`` imports, at module level or inside functions (a lazy import
    is still an edge): ``from fleet.cli import runs`` names the module fleet.cli.runs."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module in known:
            found.update(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known
                         else node.module for a in node.names)
    return found - {_module_name(path)}


def test_no_import_cycle_among_fleet_modules() -> None:
    """Walks the import graph from every module (fleet/cli's included): no module reaches
    itself again. Before the CLI registered its own commands, all cli modules formed one."""
    names = {_module_name(p): p for p in MODULES}
    graph = {name: _fleet_imports(path, set(names)) for name, path in names.items()}
    cycles: list[str] = []
    done: set[str] = set()

    def visit(name: str, stack: list[str]) -> None:
        for dep in sorted(graph[name]):
            if dep in stack:
                cycles.append(" -> ".join([*stack[stack.index(dep):], dep]))
            elif dep not in done:
                visit(dep, [*stack, dep])
        done.add(name)

    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert "fleet.cli.runs" in graph["fleet.cli.main"]
    assert cycles == []


def test_cli_modules_share_only_public_names_and_none_imports_main() -> None:
    """Each command module registers itself; shared options and helpers are public (in
    cli/args.py); only the package's entry point imports cli.main."""
    offenders = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith(
                    "fleet.cli"):
                continue
            names = [a.name for a in node.names]
            if node.module == "fleet.cli.main" and rel(path) not in {"cli/__init__.py",
                                                                      "__main__.py"}:
                offenders.append(f"{rel(path)}:{node.lineno} imports fleet.cli.main")
            offenders.extend(f"{rel(path)}:{node.lineno} imports {node.module}.{n}"
                             for n in names if n.startswith("_"))
    commands = [p for p in (PACKAGE / "cli").glob("*.py")
                if p.stem not in {"__init__", "main", "args", "progress"}]
    unregistered = [rel(p) for p in commands
                    if "def register(subparsers" not in p.read_text()]
    assert offenders == [] and unregistered == [] and len(commands) >= 8
