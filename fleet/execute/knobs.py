"""Runtime knobs around one case, through the host agent's read/write (never a shell).

``apply_knobs`` reads every knob's current value, writes the requested ones, reads them back;
KVM module parameters a host can take at runtime (fleet.plan.provisioning.ModuleKnob) go the
same way, under their ``<module>.<param>`` name;
on any failure it restores what it wrote and says why (the case must not run).
``restore_knobs`` writes the previous values back and checks them. TransportError passes
through: the caller keeps the states and restores them on its next session.
Knob writes say so (``knob="set"`` / ``"restore"``): the agent journals each original value on
the host before the first write and writes it back itself if this controller goes away
(fleet/agent/protocol.py, version 4); a set needs the host lock (``HostSession.lock``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from fleet.agent.protocol import (
    FileContent,
    KnobRecovery,
    KnobWrite,
    LockWait,
    RunOutcome,
    SampleSpec,
    WriteOutcome,
)
from fleet.execute.policy import current_value, knob_text
from fleet.knobs import KNOBS
from fleet.model import Assignment
from fleet.plan.provisioning import ModuleKnob
from fleet.runs import KnobState


class HostSession(Protocol):
    """What the executor needs from a host: an AgentSession (or an honest stand-in)."""

    def run(self, argv: Sequence[str], *, timeout_seconds: float,
            stdout_cap_bytes: int, stderr_cap_bytes: int) -> RunOutcome: ...

    def run_sampled(self, argv: Sequence[str], *, timeout_seconds: float,
                    stdout_cap_bytes: int, stderr_cap_bytes: int, sample: SampleSpec,
                    on_sample: Callable[[Mapping[str, Any]], None]) -> RunOutcome: ...

    def read(self, paths: Sequence[str]) -> tuple[FileContent, ...]: ...

    def write(self, path: str, value: str, *, knob: KnobWrite | None = None) -> WriteOutcome: ...

    def lock(self, *, controller: str, controller_pid: int, run_id: str, wait_seconds: float,
             on_wait: Callable[[LockWait], None] | None = None) -> tuple[KnobRecovery, ...]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class KnobResult:
    states: tuple[KnobState, ...]
    error: str | None  # None: every knob holds its requested value


def changed(state: KnobState) -> bool:
    """Whether applying wrote this knob (so it needs restoring)."""
    return state.before is not None and state.before != state.requested


def apply_knobs(session: HostSession, knobs: Assignment,
                module_params: Sequence[ModuleKnob] = ()) -> KnobResult:
    wanted = [(name, KNOBS[name].path, knob_text(value)) for name, value in knobs]
    wanted += [(k.name, k.path, k.text) for k in module_params]
    if not wanted:
        return KnobResult((), None)
    files = session.read([path for _, path, _ in wanted])
    states = [KnobState(name, path, _value(f), requested, None, True)
              for (name, path, requested), f in zip(wanted, files, strict=True)]
    unreadable = [f"{s.name}: cannot read {f.path}: {f.error or 'no text'}"
                  for s, f in zip(states, files, strict=True) if s.before is None]
    if unreadable:
        return KnobResult(tuple(states), "knob " + "; ".join(unreadable))
    written: list[KnobState] = []
    for state in states:
        if not changed(state):
            continue
        outcome = session.write(state.path, state.requested, knob="set")
        if outcome.error is not None:
            restored = restore_knobs(session, written)
            return KnobResult(_merge(states, restored), f"knob {state.name}: cannot write "
                              f"{state.requested!r} to {state.path}: {outcome.error}")
        written.append(replace(state, restored=False))
    return _verify(session, _merge(states, tuple(written)))


def _verify(session: HostSession, states: tuple[KnobState, ...]) -> KnobResult:
    files = session.read([s.path for s in states])
    checked = tuple(replace(s, after=_value(f)) for s, f in zip(states, files, strict=True))
    wrong = [s for s in checked if s.after != s.requested]
    if not wrong:
        return KnobResult(checked, None)
    restored = restore_knobs(session, [s for s in checked if changed(s)])
    detail = "; ".join(f"{s.name}: wrote {s.requested!r} to {s.path}, read back {s.after!r}"
                       for s in wrong)
    return KnobResult(_merge(checked, restored), f"knob {detail}")


def restore_knobs(session: HostSession, states: Sequence[KnobState]) -> tuple[KnobState, ...]:
    """Write each changed knob's previous value back; ``restored`` says if it reads back so."""
    todo = [s for s in states if changed(s)]
    for state in todo:
        assert state.before is not None
        session.write(state.path, state.before, knob="restore")
    files = session.read([s.path for s in todo]) if todo else ()
    back = {s.path: _value(f) == s.before for s, f in zip(todo, files, strict=True)}
    return tuple(replace(s, restored=back.get(s.path, True)) for s in states)


def _merge(states: Sequence[KnobState], updates: Sequence[KnobState]) -> tuple[KnobState, ...]:
    by_path = {s.path: s for s in updates}
    return tuple(by_path.get(s.path, s) for s in states)


def _value(file: FileContent) -> str | None:
    return None if file.text is None else current_value(file.text)
