"""One vm_lab_up / vm_lab_down at a time per state directory (flock on the directory)."""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

UNSAFE_PATH_CHARS = re.compile(r"[\s\"'\\#,]")


@contextmanager
def locked_state_dir(state_dir: Path) -> Iterator[bool]:
    """Create ``state_dir`` if needed and hold an exclusive lock on it; yields whether this
    call created it. A directory created here and left empty is removed on the way out.
    """
    created = not state_dir.exists()
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield created
    finally:
        os.close(fd)  # closing releases the lock
        if created and state_dir.is_dir() and not any(state_dir.iterdir()):
            state_dir.rmdir()
