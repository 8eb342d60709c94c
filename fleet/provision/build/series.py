"""A patch series: the files it touches (pure) and its application to a private copy.

``patch -p1`` applies .patch and mbox files alike (the mail headers are ignored); in a git
checkout ``git am`` applies them as commits. A patch that does not apply raises one line
naming the patch file and the failing hunk and file; the caller discards the copy.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from fleet.errors import ProvisionError

_DIFF_PATH = re.compile(r"^(?:---|\+\+\+) (\S+)")
_GIT_DIFF = re.compile(r"^diff --git a/(\S+) b/(\S+)")
_HUNK_FAILED = re.compile(r"Hunk #(\d+) FAILED at (\d+)")
_PATCHING = re.compile(r"^(?:patching|checking) file '?([^']+?)'?$")
_NO_FILE = re.compile(r"can't find file to patch at input line (\d+)")
_IDENTITY = ("-c", "user.name=fleet", "-c", "user.email=fleet@localhost")
_GIT_FAILED = re.compile(r"^error: (?:patch failed: (\S+?):(\d+)|(.+))$")


def touched_paths(text: str) -> tuple[str, ...]:
    """Every file path a series' text names (``a/``, ``b/`` stripped: -p1), in order."""
    paths: list[str] = []
    for line in text.splitlines():
        git = _GIT_DIFF.match(line)
        names = git.groups() if git else ()
        plain = _DIFF_PATH.match(line)
        if plain:
            names = (plain.group(1),)
        for name in names:
            if name == "/dev/null" or "/" not in name:
                continue
            path = name.split("/", 1)[1] if name.startswith(("a/", "b/")) else name
            if path not in paths:
                paths.append(path)
    return tuple(paths)


def series_hash(patches: Sequence[Path]) -> str:
    """Over the patches' contents, in order (not their names)."""
    digest = hashlib.sha256(b"fleet-series-1\0")
    for patch in patches:
        content = patch.read_bytes()
        digest.update(f"{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


def patch_failure(output: str) -> str:
    """'hunk #2 of arch/x86/kvm/x86.c FAILED at line 120' from patch(1), git-am or git-apply."""
    current: str | None = None
    lines = [raw.strip() for raw in output.splitlines() if raw.strip()]
    for index, line in enumerate(lines):
        patching = _PATCHING.match(line)
        if patching:
            current = patching.group(1)
        failed = _HUNK_FAILED.search(line)
        if failed:
            return f"hunk #{failed.group(1)} of {current or '?'} FAILED at line {failed.group(2)}"
        if _NO_FILE.search(line):
            quoted = [_DIFF_PATH.match(x[1:]) for x in lines[index:] if x.startswith("|")]
            names = [m.group(1).split("/", 1)[-1] for m in quoted if m]
            return f"{names[-1] if names else 'a file it patches'} is not in the source tree"
        git = _GIT_FAILED.match(line)
        if git:
            if git.group(1):
                return f"a hunk of {git.group(1)} FAILED at line {git.group(2)}"
            return git.group(3)
    return lines[-1] if lines else "it does not apply"


def apply_series(tree: Path, patches: Sequence[Path], *, use_git: bool) -> None:
    """Apply ``patches`` in order inside ``tree`` (a private copy)."""
    if use_git:
        _git(tree, "init", "-q")
        _git(tree, "add", "-A")
        _git(tree, *_IDENTITY, "commit", "-q", "--no-verify", "-m", "base")
    for patch in patches:
        done = subprocess.run(_apply_argv(patch, use_git=use_git), cwd=tree, capture_output=True,
                              text=True, check=False)
        if done.returncode == 0 and use_git and not _is_mbox(patch):
            _git(tree, *_IDENTITY, "commit", "-q", "-a", "--no-verify", "-m", patch.name)
        if done.returncode != 0:
            reason = patch_failure(done.stdout + done.stderr)
            raise ProvisionError(f"patch does not apply: {reason}", where=str(patch),
                                 hint="rebase the series onto the source tree, or fix the order")


def _apply_argv(patch: Path, *, use_git: bool) -> list[str]:
    """git am for a mail (mbox), git apply for a plain diff in a git checkout, else patch."""
    if use_git and _is_mbox(patch):
        return ["git", *_IDENTITY, "am", "-q", "--no-3way", str(patch.resolve())]
    if use_git:
        return ["git", "apply", "--index", str(patch.resolve())]
    # --fuzz=0: a hunk applies where its context matches exactly, as with git (no silent drift)
    return ["patch", "-p1", "--batch", "--forward", "--fuzz=0", "--no-backup-if-mismatch",
            "--reject-file=-", "-i", str(patch.resolve())]


def _is_mbox(patch: Path) -> bool:
    with patch.open("rb") as handle:
        return handle.read(5) == b"From "


def _git(tree: Path, *args: str) -> None:
    done = subprocess.run(["git", *args], cwd=tree, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise ProvisionError(f"git {' '.join(a for a in args if not a.startswith('user.'))} "
                             f"failed in the private copy: {last}", where=str(tree))
