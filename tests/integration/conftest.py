"""Integration fixtures: a real lab of OpenSSH hosts in network namespaces.

The ``lab`` fixture FAILS (never skips) when the lab cannot be built, with the LabError line:
CI runs as root, so a missing lab is a broken lab, not an environment to tolerate.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleet.errors import LabError
from fleet.lab import LabState, lab_down, lab_up

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
