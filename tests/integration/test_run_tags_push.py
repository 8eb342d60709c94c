"""Run tags are part of the run: `fleet run --pushgateway URL --tag k=v` records the given
tags and the defaults (date, fleet_version, git_sha) with the run, whatever event sinks the
command line composes (the pushgateway's replaced the tag recorder once, losing every tag)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from prom_fixtures import ROOT, fleet, pushgateway_on, quickstart_run


def test_a_pushing_run_stores_its_tags_and_the_defaults(tmp_path: Path) -> None:
    store = tmp_path / "fleet.sqlite"
    with pushgateway_on(tmp_path / "pushgateway") as gateway:
        shown = quickstart_run(store, "--pushgateway", f"http://{gateway}",
                               "--tag", "branch=main", "--tag", "kernel=6.12")
    assert "8 attempt(s) pushed" in shown["_stderr"]
    tags = shown["run"]["tags"]
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=False).stdout.strip()
    assert tags["branch"] == "main" and tags["kernel"] == "6.12"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", tags["date"])
    assert tags["fleet_version"] and tags.get("git_sha") == (head or None)
    listed = json.loads(fleet("runs", "--tag", "branch=main", "--json", "--store",
                              str(store)).stdout)["runs"]
    assert [r["run_id"] for r in listed] == [shown["run"]["run_id"]]
    assert listed[0]["tags"] == tags
