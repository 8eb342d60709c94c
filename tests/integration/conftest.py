"""Integration fixtures: a real lab of OpenSSH hosts in network namespaces.

The ``lab`` fixture FAILS (never skips) when the lab cannot be built, with the LabError line:
CI runs as root, so a missing lab is a broken lab, not an environment to tolerate.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from fleet.errors import LabError
from fleet.lab import LabState, lab_down, lab_up
from fleet.lab.image.rootfs import RootfsImage, default_cache_dir, ensure_rootfs

LAB_HOSTS = 3


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    """Three lab hosts (lab1..lab3) for the whole session; always torn down."""
    state_dir = tmp_path_factory.mktemp("lab")
    try:
        state = lab_up(LAB_HOSTS, state_dir)
    except LabError as exc:  # lab_up already removed what it created
        failure: str | None = f"lab could not be built: {exc}"
    else:
        failure = None
    if failure is not None:  # outside the except: the report is the one LabError line
        pytest.fail(failure, pytrace=False)
    try:
        yield state
    finally:
        lab_down(state_dir)


# --- emulated NUMA lab: QEMU guests (fleet.lab.vm.lab) -------------------------------------------

NUMA_SPECS = ("2n", "4n")


@pytest.fixture(scope="session")
def numa_lab(tmp_path_factory: pytest.TempPathFactory,
             rootfs_image: RootfsImage) -> Iterator[LabState]:
    """A 2-node and a 4-node QEMU guest (vm1-2n, vm2-4n), booted in parallel once per session
    from the cached lab image; always torn down. Fails (never skips) when they cannot boot.
    """
    from fleet.lab import vm_lab_up

    state_dir = tmp_path_factory.mktemp("numa")
    try:
        # two guests booting at once on a 2-core machine: 240 s (the default) is too close
        state = vm_lab_up(NUMA_SPECS, state_dir, image=rootfs_image, progress=_warn_restarts,
                          ready_timeout_seconds=480)
    except LabError as exc:  # vm_lab_up already removed what it started
        failure: str | None = f"NUMA lab could not be booted: {exc}"
    else:
        failure = None
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    try:
        yield state
    finally:
        lab_down(state_dir)


def _warn_restarts(line: str) -> None:
    """A guest started again (stuck at its login prompt) shows in the warnings summary."""
    if "starting it again" in line:
        warnings.warn(line, UserWarning, stacklevel=2)


@pytest.fixture(scope="session")
def rootfs_image() -> RootfsImage:
    """The lab's guest image from the developer's cache (built once, ~1-2 min, when missing).

    FAILS (never skips) when it cannot be built, with the LabError line.
    """
    try:
        return ensure_rootfs(default_cache_dir())
    except LabError as exc:
        failure = f"guest image could not be built: {exc}"
    pytest.fail(failure, pytrace=False)
