"""`fleet provision --variant`: every refusal comes before any host is touched (one line,
exit 2); hosts here have unroutable addresses, so touching one would fail differently."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.cli.main import main

INVENTORY = """\
all:
  hosts:
    real:
      ansible_host: 192.0.2.1
      fleet_variants:
        other: {kind: deb, deb: k.deb}
        mine: {kind: kernel, source: /src/linux, config: missing.config}
    shared:
      ansible_host: 192.0.2.2
      fleet_lab_kind: netns
      fleet_variants:
        other: {kind: deb, deb: k.deb}
"""


def provision(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(INVENTORY)
    (tmp_path / "k.deb").write_bytes(b"not read before the checks")
    code = main(["provision", "-i", str(inventory), "--store", str(tmp_path / "f.db"), *args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("args", "says"), [
    (("--variant", "nope", "--limit", "real"), "host real declares no variant 'nope' (its "
                                               "variants: other, mine)"),
    (("--variant", "mine", "--limit", "real"), "variant mine of host real: config file "),
    (("--variant", "other"), "host shared is a network-namespace lab host"),
    (("--variant", "other", "--limit", "real", "--check"), "--check and --diff do not apply"),
])
def test_refusals_are_one_line_and_touch_nothing(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 args: tuple[str, ...], says: str) -> None:
    code, err = provision(tmp_path, capsys, *args)
    assert code == 2, err
    assert says in err and err.count("\n") == 1, err
    assert not (tmp_path / "f.db").exists()
