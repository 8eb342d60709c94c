"""`fleet --version`, `--help`, `runs` and `show` start fast: they import none of the heavy
libraries (statistics, plots, change points, Ansible, SSH), which the commands that use them
import inside their functions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.cli import args as cli_args
from fleet.cli import export as cli_export
from fleet.execute.worker import DEFAULT_HOST_LOCK_WAIT_SECONDS
from fleet.export.remote_write_codec import DEFAULT_BATCH_SAMPLES
from fleet.runs import RunInfo
from fleet.store import Store
from fleet.store.runs import create_run

HEAVY = ("numpy", "scipy", "otava", "matplotlib", "ansible", "paramiko")
LOADED = """\
import json, runpy, sys
sys.argv = ["fleet", *sys.argv[1:]]
try:
    runpy.run_module("fleet", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print("\\n" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def loaded(*argv: str) -> tuple[int, set[str]]:
    """(exit code, the modules loaded) of `fleet ARGV` in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", LOADED, *argv], capture_output=True, text=True,
                          timeout=120, check=True)
    data = json.loads(done.stdout.splitlines()[-1])
    return int(data["code"]), set(data["modules"])


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["run", "--help"]])
def test_version_and_help_import_nothing_heavy(argv: list[str]) -> None:
    code, modules = loaded(*argv)
    assert code == 0
    assert heavy(modules) == []
    assert "rich" not in modules and "sqlite3" not in modules  # not even these


def test_runs_and_show_import_nothing_heavy(tmp_path: Path) -> None:
    store_path = tmp_path / "fleet.sqlite"
    with Store.open(store_path) as store:
        info = RunInfo("r1", "s", "s.yml", "0" * 64, 1, (), None, "0.1.0", 1.0, 2.0,
                       "completed")
        create_run(store, info, suite_text="", plan_json="{}", cases=[], jobs=[], skipped=[],
                   tags={"branch": "main"})
    for argv in (["runs", "--json"], ["runs"], ["show", "r1"], ["show", "r1", "--json"]):
        code, modules = loaded(*argv, "--store", str(store_path))
        assert code == 0, argv
        assert heavy(modules) == [], argv


def test_cli_defaults_agree_with_the_core() -> None:
    """The CLI repeats these defaults so that --help imports neither module."""
    assert cli_args.DEFAULT_HOST_LOCK_WAIT_SECONDS == DEFAULT_HOST_LOCK_WAIT_SECONDS
    assert cli_export.DEFAULT_BATCH_SAMPLES == DEFAULT_BATCH_SAMPLES


def test_a_suite_is_read_without_the_statistics() -> None:
    """The suite's compare: section is parsed by config/compare.py, which holds the Policy: a
    `fleet plan` or `fleet run` loads numpy and scipy only when it compares."""
    code = ("import json, sys; from pathlib import Path; "
            "from fleet.config.suite import load_suite; "
            "load_suite(Path(sys.argv[1])); print(json.dumps(sorted(sys.modules)))")
    quickstart = Path(__file__).resolve().parents[2] / "benchmarks" / "quickstart.yml"
    done = subprocess.run([sys.executable, "-c", code, str(quickstart)], capture_output=True,
                          text=True, timeout=120, check=True)
    assert heavy(set(json.loads(done.stdout))) == []
