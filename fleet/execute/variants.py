"""A host's kernel variant during a run: provisioned between variant groups, stamped on attempts.

A case whose ``kernel`` value names a variant the host declares (fleet_variants) runs on that
variant: before its first case of a group, the host thread hands the variant's name to the
host's provisioner (fleet.provision.variants.during_run: the same install, boot, build and
verification as `fleet provision --variant`), which returns the verified identity and the
host's facts as they are afterwards. Every attempt of that variant is stamped with the
identity. The host stays on a variant while its queue's cases ask for it (the plan groups
them), so it switches once per group, not once per case.

A variant that failed once on a host (did not build, did not boot and was rolled back) is not
tried again in the same run: its other cases there fail with the same reason at once. A
session lost to a transport error forgets the identity (the host may have rebooted on its
own): the next case of the variant provisions again, which costs one probe when it is still
in place.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from fleet.errors import FleetError
from fleet.model import Assignment, Facts
from fleet.variant import VariantIdentity

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Provisioned:
    """What a provisioner returns: the verified identity, the host's facts afterwards."""

    identity: VariantIdentity
    facts: Facts | None  # None: they could not be gathered again (the old ones stay)


# (variant name, progress) -> Provisioned; raises FleetError (one line) when it cannot
HostProvisioner = Callable[[str, Progress], Provisioned]


@dataclass(frozen=True)
class HostVariants:
    """A host's declared variants that a run can provision, and how."""

    names: frozenset[str]
    provision: HostProvisioner


@dataclass(frozen=True)
class Switched:
    """One provisioning during a run (for the event stream and the store's facts)."""

    variant: str
    identity: VariantIdentity
    facts: Facts | None
    seconds: float


def split_variant(variant: Assignment, names: frozenset[str]) -> tuple[str | None, Assignment]:
    """The declared variant a case's ``kernel`` value names (None: none), and the rest of its
    variant settings (module parameters, a command line), which the plan's steps still
    decide."""
    for key, value in variant:
        if key == "kernel" and isinstance(value, str) and value in names:
            return value, tuple(item for item in variant if item[0] != "kernel")
    return None, variant


class VariantKeeper:
    """One host thread's variant state: the verified identity and the variants that failed."""

    def __init__(self, variants: HostVariants | None) -> None:
        self._variants = variants
        self.identity: VariantIdentity | None = None
        self._failed: dict[str, str] = {}

    @property
    def names(self) -> frozenset[str]:
        return frozenset() if self._variants is None else self._variants.names

    def forget(self) -> None:
        """The host may have changed under us (a lost session): verify again next time."""
        self.identity = None

    def needs(self, name: str) -> bool:
        """True when the host must be provisioned before a case of variant ``name``."""
        return name not in self._failed and (self.identity is None or
                                             self.identity.variant != name)

    def failure(self, name: str) -> str | None:
        return self._failed.get(name)

    def provision(self, name: str, progress: Progress) -> Switched | str:
        """Provision variant ``name``: what was switched, or the one line why it failed."""
        assert self._variants is not None  # needs() is only true for declared names
        self.identity = None
        started = time.monotonic()
        try:
            done = self._variants.provision(name, progress)
        except FleetError as exc:
            self._failed[name] = f"variant {name} was not provisioned: {exc.line()}"
            return self._failed[name]
        self.identity = done.identity
        return Switched(name, done.identity, done.facts, time.monotonic() - started)
