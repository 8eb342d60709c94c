"""`fleet provision --variant` for a ``kernel`` variant: one build for hosts that share its
inputs (under the build lock), booted through switch() with the built .deb, and an identity
that carries the build's source and series hashes. The build and the boot are stand-ins here
(the real ones: tests/unit/test_kernel_build.py, the deb variants' lab tests)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from fleet.config.inventory import load_inventory
from fleet.errors import ProvisionError
from fleet.provision.build.kernel import KernelBuild, KernelBuildRequest
from fleet.provision.variants import apply, kernel
from fleet.provision.variants.debs import KernelDeb
from fleet.variant import VariantIdentity

INVENTORY = """\
all:
  hosts:
    h1: {ansible_host: 192.0.2.1, fleet_variants: {mm: {kind: kernel, source: /src/linux,
                                                        patches: [p.patch], config: small.config}}}
    h2: {ansible_host: 192.0.2.2, fleet_variants: {mm: {kind: kernel, source: /src/linux,
                                                        patches: [p.patch], config: small.config}}}
"""


def test_hosts_sharing_the_inputs_share_one_build(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hosts.yml").write_text(INVENTORY)
    (tmp_path / "small.config").write_text("CONFIG_X=y\n")
    (tmp_path / "p.patch").write_text("")
    deb = tmp_path / "linux-image-6.1.0-fleet-0123456789_1_amd64.deb"
    deb.write_bytes(b"deb")
    requests: list[KernelBuildRequest] = []
    booted: list[tuple[str, KernelDeb | None]] = []

    def build(request: KernelBuildRequest) -> KernelBuild:
        requests.append(request)
        return KernelBuild(key="kernel-0123456789", directory=tmp_path, deb=deb,
                           kernel_release="6.1.0-fleet-0123456789", source=request.source,
                           patches=("p.patch",), source_hash="s" * 64, series_hash="p" * 64,
                           config_hash="c" * 64, build_seconds=1.0, cached=len(requests) > 1)

    def switch(_inventory: object, host: str, variant: str, **kw: Any) -> VariantIdentity:
        booted.append((host, kw.get("built")))
        return VariantIdentity(variant=variant, kind="kernel",
                               kernel_release="6.1.0-fleet-0123456789", kvm_modules=(),
                               cmdline="ro", source_sha256="deb-sha", series_sha256=None)

    monkeypatch.setattr("fleet.provision.build.kernel.build_kernel", build)
    monkeypatch.setattr(kernel, "switch", switch)
    inventory = load_inventory([tmp_path / "hosts.yml"])
    outcomes = apply.provision_variant(inventory, "mm", cache_dir=tmp_path / "debs")
    assert [o.error for o in outcomes] == [None, None]
    assert {r.config_text for r in requests} == {"CONFIG_X=y\n"}
    assert requests[0].config_origin == str(tmp_path / "small.config")
    assert requests[0].patches == (tmp_path / "p.patch",)
    assert sorted(h for h, _ in booted) == ["h1", "h2"]
    assert {b.path if b else None for _, b in booted} == {deb}
    assert {b.kernel_release if b else None for _, b in booted} == {"6.1.0-fleet-0123456789"}
    for outcome in outcomes:
        assert outcome.identity is not None
        assert outcome.identity.source_sha256 == "s" * 64
        assert outcome.identity.series_sha256 == "p" * 64


def test_the_build_lock_is_held_while_building(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """reach_kernel builds inside the caller's lock (one build at a time, the same key once)."""
    (tmp_path / "hosts.yml").write_text(INVENTORY)
    (tmp_path / "small.config").write_text("CONFIG_X=y\n")
    (tmp_path / "p.patch").write_text("")
    lock = threading.Lock()
    held: list[bool] = []

    def build(_request: KernelBuildRequest) -> KernelBuild:
        held.append(lock.locked())
        raise ProvisionError("stop here", where="test")

    monkeypatch.setattr("fleet.provision.build.kernel.build_kernel", build)
    inventory = load_inventory([tmp_path / "hosts.yml"])
    spec = inventory.provisioning["h1"].variant("mm")
    assert spec is not None
    with pytest.raises(ProvisionError, match="stop here"):
        kernel.reach_kernel(inventory, "h1", spec, cache_dir=tmp_path, build_lock=lock,
                            progress=None)
    assert held == [True] and not lock.locked()
