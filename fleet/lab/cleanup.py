"""The two shapes both kinds of lab share: remove everything recorded, and build-or-clean-up."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from fleet.errors import LabError

T = TypeVar("T")
_AGAIN = "fix the cause and run `fleet lab down` again"


def remove_all(label: str, state_dir: Path, members: Sequence[tuple[str, Callable[[], list[str]]]],
               remove_files: Callable[[], list[str]]) -> tuple[str, ...]:
    """Stop every (name, stop) member even when another fails, then remove the files.

    Any failure is one LabError naming them all; files (state.json included) are removed only
    when every member stopped, so `down` can be retried.
    """
    removed: list[str] = []
    problems: list[str] = []
    for name, stop in members:
        try:
            removed += stop()
        except (LabError, OSError) as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        raise LabError(f"{label} not fully removed: {'; '.join(problems)}",
                       where=str(state_dir), hint=_AGAIN)
    try:
        removed += remove_files()
    except OSError as exc:
        raise LabError(f"cannot remove {label} files: {exc}", where=str(state_dir),
                       hint=_AGAIN) from exc
    return tuple(removed)


def remove_recorded_files(files: Sequence[str], dirs: Sequence[str],
                          state_file: Path) -> list[str]:
    """Unlink the lab's recorded files and its state file, then its recorded directories that
    are empty; what was removed, as lines."""
    count = 0
    for name in files:
        path = Path(name)
        if path.exists() or path.is_symlink():
            path.unlink()
            count += 1
    state_file.unlink(missing_ok=True)
    removed = [f"removed {count + 1} files from {state_file.parent}"]
    for name in dirs:
        directory = Path(name)
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
            removed.append(f"removed directory {directory}")
    return removed


def build_or_clean(label: str, state_dir: Path, build: Callable[[], T],
                   clean: Callable[[BaseException], None]) -> T:
    """``build()``; on any failure (Ctrl-C included) ``clean(cause)`` first, then re-raise.

    An OSError becomes a one-line LabError naming the state directory.
    """
    try:
        return build()
    except LabError as exc:
        clean(exc)
        raise
    except OSError as exc:
        error = LabError(f"{label} setup failed: {exc}", where=str(state_dir))
        clean(error)
        raise error from exc
    except BaseException as exc:  # e.g. KeyboardInterrupt: still leave nothing behind
        clean(exc)
        raise
