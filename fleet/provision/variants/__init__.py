"""Kernel variants on hosts: ``switch`` installs, boots (kexec or the next-boot entry),
verifies and rolls back; it returns the verified VariantIdentity (fleet.variant)."""

from __future__ import annotations

from fleet.provision.variants.switch import switch
from fleet.variant import VariantIdentity

__all__ = ["VariantIdentity", "switch"]
