"""One error tree. Every FleetError renders as one line: where, what is wrong, what to do."""

from __future__ import annotations


class FleetError(Exception):
    """A user-facing failure.

    ``where`` is a file[:line[:col]], a host name, or a subsystem; ``what`` says what is
    wrong; ``hint`` says what to do about it. ``str()`` is the single line the CLI prints.
    """

    def __init__(self, what: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.what = " ".join(what.split())
        self.where = where
        self.hint = " ".join(hint.split()) if hint else None
        super().__init__(self.line())

    def line(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.hint:
            text = f"{text} ({self.hint})"
        return text


class ConfigError(FleetError):
    """A configuration file (inventory, suite) is malformed or inconsistent."""


class InventoryError(ConfigError):
    """The inventory cannot be read, or a --limit pattern matches nothing."""


class TransportError(FleetError):
    """A host could not be reached, authenticated, or a command could not be run."""


class HostBusyError(TransportError):
    """Another controller kept the host's lock (fleet/agent/remote/host_state.py) past the wait."""


class HostKeyError(TransportError):
    """A host's SSH key is unknown or does not match known_hosts."""


class CommandError(TransportError):
    """A command ran but failed; carries the Result."""

    def __init__(self, what: str, *, where: str | None = None, hint: str | None = None,
                 result: object | None = None) -> None:
        super().__init__(what, where=where, hint=hint)
        self.result = result


class ParseError(FleetError):
    """Text from a host (or a captured file) does not have the expected format."""


class StoreError(FleetError):
    """The SQLite store cannot be opened, migrated or written."""


class LabError(FleetError):
    """The emulated lab cannot be created, inspected or torn down."""


class ProvisionError(FleetError):
    """Provisioning cannot start or cannot finish: a bad variant, a missing source, a refused
    host (not a task that failed on one host: that is reported per host)."""


class VariantBootError(ProvisionError):
    """A kernel variant did not boot; the host was power-cycled back onto ``back_on``."""

    def __init__(self, what: str, *, where: str | None = None, hint: str | None = None,
                 back_on: str | None = None) -> None:
        super().__init__(what, where=where, hint=hint)
        self.back_on = back_on
