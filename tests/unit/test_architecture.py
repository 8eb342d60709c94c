"""House rules that the code must keep (walks the ASTs of fleet/)."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from fleet.agent import shipping

PACKAGE = Path(__file__).resolve().parents[2] / "fleet"
MODULES = sorted(PACKAGE.rglob("*.py"))

# each third-party I/O library is imported by exactly one adapter module (or package); every
# adapter named here exists (a library nothing uses yet, e.g. ansible_runner for provisioning,
# gets its line when its adapter is written)
ADAPTERS = {
    "sqlite3": "store/",
    "paramiko": "transport/ssh/",
    "ansible": "config/inventory/",
    "ansible_runner": "provision/ansible.py",
    "prometheus_client": "export/prometheus.py",
    "grafana_client": "export/grafana/push.py",
    "cramjam": "export/remote_write.py",
    "matplotlib": "report/plots.py",
    "otava": "compare/changes.py",
}
PURE = ["model.py", "hosts.py", "codec.py", "errors.py", "runs.py", "facts/parsers.py",
        "facts/numactl.py",
        "facts/tree.py", "facts/build.py", "facts/probe.py", "plan/matrix.py", "plan/schedule.py",
        "plan/order.py", "config/order.py",
        "knobs.py", "workloads/base.py", "workloads/command.py", "workloads/sleep.py",
        "yamlnode.py",
        "agent/protocol.py", "agent/protocol_decode.py", "lab/vm/qemu.py",
        "lab/vm/topologies.py", "sampling/formulas.py",
        "collectors/vmstat.py", "collectors/interrupts.py", "collectors/nodes.py",
        "collectors/numa_maps.py", "collectors/proc_status.py", "collectors/kvm_debugfs.py",
        "collectors/kvm_stats.py", "collectors/kmsg.py", "sampling/collect.py",
        "sampling/decode.py",
        "sampling/derive.py", "config/sampling.py",
        "export/grafana/spec.py", "export/grafana/panels.py", "export/grafana/series.py",
        "export/grafana/build.py", "export/host_series.py",
        "export/remote_write_codec.py", "report/model.py", "report/assemble.py",
        "report/series.py", "report/html.py", "compare/changes.py",
        "compare/stats.py", "config/compare.py", "compare/fingerprint.py", "compare/select.py",
        "compare/engine.py", "compare/decide.py", "compare/output.py",
        "compare/history_check.py", "report/likeness.py", "execute/events.py",
        "execute/plan.py", "export/series.py", "catalogue.py"]
IO_LIBS = {"paramiko", "ansible", "ansible_runner", "prometheus_client", "grafana_client",
           "subprocess", "socket", "sqlite3", "requests", "rich"}
# what a pure module must not load, even through other fleet modules it imports
NOT_LOADED_BY_PURE = IO_LIBS | {"otava", "matplotlib", "cramjam"}


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


def test_each_adapter_exists() -> None:
    assert [a for a in ADAPTERS.values() if not (PACKAGE / a).exists()] == []


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


# ---- transitive imports: what importing a module loads -----------------------------------------


def module_file(name: str) -> Path | None:
    """``fleet.x.y`` -> fleet/x/y.py or fleet/x/y/__init__.py (None: not a fleet module)."""
    parts = name.split(".")
    if parts[0] != "fleet":
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _run_at_import(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements that run when the module is imported: not function bodies, not the
    body of ``if TYPE_CHECKING:``."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        yield node
        if isinstance(node, ast.If):
            test = node.test
            checking = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
            yield from _run_at_import(node.orelse if checking else node.body + node.orelse)
        elif isinstance(node, ast.ClassDef | ast.With | ast.For | ast.While):
            yield from _run_at_import(node.body)
        elif isinstance(node, ast.Try):
            for part in (node.body, *(h.body for h in node.handlers), node.orelse,
                         node.finalbody):
                yield from _run_at_import(part)


def imported_at_import(path: Path) -> set[str]:
    """Dotted names the module imports when it is imported (``from a import b``: a, and a.b
    in case b is a module)."""
    package = module_name(path)
    package = package if path.name == "__init__.py" else package.rpartition(".")[0]
    names: set[str] = set()
    for node in _run_at_import(ast.parse(path.read_text()).body):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


@cache
def loads(path: Path) -> dict[str, tuple[str, ...]]:
    """Every top-level library (not fleet) importing this module loads -> the chain of fleet
    modules through which it first does."""
    found: dict[str, tuple[str, ...]] = {}
    seen = {path}
    todo: list[tuple[Path, tuple[str, ...]]] = [(path, (module_name(path),))]
    while todo:
        current, chain = todo.pop()
        for name in sorted(imported_at_import(current)):
            if name.split(".")[0] != "fleet":
                found.setdefault(name.split(".")[0], chain)
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # a.b.c runs a, a.b and a.b.c
                target = module_file(".".join(parts[:i]))
                if target is not None and target not in seen:
                    seen.add(target)
                    todo.append((target, (*chain, module_name(target))))
    return found


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_load_no_io_library_through_other_modules(module: str) -> None:
    reached = loads(PACKAGE / module)
    assert {lib: " -> ".join(reached[lib])
            for lib in sorted(set(reached) & NOT_LOADED_BY_PURE)} == {}


def test_the_transitive_walk_sees_through_modules() -> None:
    assert "sqlite3" in loads(PACKAGE / "report" / "history.py")  # via fleet.store
    assert "otava" not in loads(PACKAGE / "compare" / "changes.py")  # imported in a function
    assert "otava" not in loads(PACKAGE / "compare" / "engine.py")
    assert module_file("fleet.store.runs") == PACKAGE / "store" / "runs.py"
    assert module_file("fleet.store") == PACKAGE / "store" / "__init__.py"


def test_the_agent_ships_only_standard_library_code() -> None:
    """What the controller sends to a host (shipping.shipped_files(): agent/remote/) runs there
    alone: it may import only the standard library, anywhere in the file, and the other
    shipped modules (their texts share one scope on the host; imported in the package only)."""
    shipped = shipping.shipped_files()
    assert len(shipped) >= 2 and all(p.is_file() for p in shipped)
    allowed = {module_name(p) for p in shipped}
    foreign = {}
    for path in shipped:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                foreign[rel(path)] = "relative import"
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name.split(".")[0] not in sys.stdlib_module_names | {"__future__"} \
                        and name not in allowed:
                    foreign[rel(path)] = name
    assert foreign == {}


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
                if p.stem not in {"__init__", "main", "args", "progress", "render"}]
    unregistered = [rel(p) for p in commands
                    if "def register(subparsers" not in p.read_text()]
    assert offenders == [] and unregistered == [] and len(commands) >= 8


def test_the_labs_lazy_front_door_names_resolve() -> None:
    """fleet.lab loads its names on first use; each one it lists is there."""
    import fleet.lab

    assert fleet.lab.__all__ == sorted(fleet.lab._HOMES)
    assert all(getattr(fleet.lab, name) is not None for name in fleet.lab.__all__)
    with pytest.raises(AttributeError):
        fleet.lab.no_such_name  # noqa: B018
