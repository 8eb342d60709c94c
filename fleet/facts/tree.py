"""A host's probed files as an immutable tree, from a probe dump or from a directory.

``parse_dump`` reads the framed output of :data:`fleet.facts.probe.PROBE_SCRIPT`;
``tree_from_root`` reads a real directory laid out like ``/`` (fixture trees, local tests)
following the same spec, so both give equal trees for the same files.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from fleet.errors import ParseError
from fleet.facts.probe import (
    PROBE_FORMAT,
    PROBED_EXISTENCE,
    PROBED_FILES,
    PROBED_LISTINGS,
    PROBED_MODES,
    PROBED_RAW_FILES,
    RECORD_SEPARATOR,
)

RS = RECORD_SEPARATOR
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class FileTree:
    """Files (path -> text), directory listings, command outputs, and what was absent.

    ``missing`` holds paths (and command names) that were asked for but were missing,
    unreadable, or failed; ``existing`` holds paths whose existence was probed and confirmed.
    ``modes`` holds the permission bits (``0o644``) of the entries of the directories in
    ``PROBED_MODES``, by full path; a path without one: its mode is unknown.
    """

    files: Mapping[str, str] = field(default_factory=dict)
    listings: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    commands: Mapping[str, str] = field(default_factory=dict)
    existing: frozenset[str] = frozenset()
    missing: frozenset[str] = frozenset()
    modes: Mapping[str, int] = field(default_factory=dict)

    def mode(self, path: str) -> int | None:
        """The permission bits of ``path`` (``0o644``), or None if its mode was not read."""
        return self.modes.get(path)

    def text(self, path: str) -> str | None:
        """The content of ``path``, or None if it was not read."""
        return self.files.get(path)

    def listing(self, path: str) -> tuple[str, ...] | None:
        """Entry names of directory ``path``, or None if it was not listed."""
        return self.listings.get(path)

    def command(self, name: str) -> str | None:
        """Standard output of command ``name`` (e.g. ``"numactl -H"``), or None."""
        return self.commands.get(name)

    def exists(self, path: str) -> bool:
        """True if ``path`` was read, listed, or its existence was confirmed."""
        return path in self.files or path in self.listings or path in self.existing

    def matching(self, pattern: str) -> tuple[str, ...]:
        """Sorted file paths matching a glob whose ``*``/``?``/``[..]`` never cross ``/``."""
        return tuple(p for p in sorted(self.files) if path_matches(pattern, p))

    def listings_matching(self, pattern: str) -> tuple[str, ...]:
        """Sorted listed directory paths matching ``pattern`` (same rules as ``matching``)."""
        return tuple(p for p in sorted(self.listings) if path_matches(pattern, p))


def path_matches(pattern: str, path: str) -> bool:
    """Glob match component by component (``*`` does not match ``/``)."""
    pattern_parts = pattern.split("/")
    path_parts = path.split("/")
    if len(pattern_parts) != len(path_parts):
        return False
    return all(fnmatchcase(name, pat) for pat, name in zip(pattern_parts, path_parts, strict=True))


# --------------------------------------------------------------------------- ls -ln lines

_PERMISSION_BITS = (  # (position in the mode string, letters that set the bit, bit)
    (1, "r", 0o400), (2, "w", 0o200), (3, "xs", 0o100), (4, "r", 0o040), (5, "w", 0o020),
    (6, "xs", 0o010), (7, "r", 0o004), (8, "w", 0o002), (9, "xt", 0o001),
    (3, "sS", 0o4000), (6, "sS", 0o2000), (9, "tT", 0o1000))
_LS_FIELDS = 9  # mode, links, uid, gid, size, month, day, time or year, name (LC_ALL=C)


def parse_ls_line(line: str) -> tuple[str, int] | tuple[()] | None:
    """One line of POSIX ``ls -ln`` output -> (entry name, permission bits); ``()`` for the
    ``total N`` line; None when the line is not in that format."""
    if line.startswith("total ") and line[6:].strip().isdigit():
        return ()
    fields = line.split(None, _LS_FIELDS - 1)
    mode = fields[0] if fields else ""
    if len(fields) != _LS_FIELDS or len(mode) < 10 or mode[0] not in "-dlcbps":
        return None
    if any(c not in "rwxsStT-" for c in mode[1:10]):
        return None
    bits = sum(bit for at, letters, bit in _PERMISSION_BITS if mode[at] in letters)
    return fields[-1], bits


# --------------------------------------------------------------------------- parse_dump


class _DumpReader:
    """Walks the lines of a dump; every error names the 1-based line number."""

    def __init__(self, text: str, source: str) -> None:
        self.lines = text.split("\n")
        self.index = 0
        self.source = source

    def error(self, what: str, *, line_index: int | None = None) -> ParseError:
        number = (self.index if line_index is None else line_index) + 1
        return ParseError(
            what,
            where=f"{self.source}:{number}",
            hint="re-run the probe; if this repeats, the host's output is not a fleet probe dump",
        )

    def next_line(self) -> str:
        if self.index >= len(self.lines):
            raise self.error("probe output ended inside a record (truncated output)")
        line = self.lines[self.index]
        self.index += 1
        return line

    def escaped_body(self, terminators: str) -> tuple[list[str], str]:
        """Body lines (RS-doubling undone) up to a terminator line; returns (lines, kind)."""
        body: list[str] = []
        while True:
            line = self.next_line()
            if line.startswith(RS + RS):
                body.append(line[1:])
            elif line.startswith(RS):
                if len(line) == 2 and line[1] in terminators:
                    return body, line[1]
                raise self.error(f"unexpected record {line[1:]!r} inside a record body",
                                 line_index=self.index - 1)
            else:
                body.append(line)

    def raw_body(self) -> tuple[list[str], str]:
        body: list[str] = []
        while True:
            line = self.next_line()
            if line in (RS + "E", RS + "U"):
                return body, line[1]
            if line.startswith(RS):
                raise self.error(f"unexpected record {line[1:]!r} inside raw content",
                                 line_index=self.index - 1)
            body.append(line)


@dataclass
class _TreeBuilder:
    files: dict[str, str] = field(default_factory=dict)
    listings: dict[str, tuple[str, ...]] = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)
    existing: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    modes: dict[str, int] = field(default_factory=dict)
    mode_dirs: set[str] = field(default_factory=set)

    def seen(self, key: str) -> bool:
        return any(key in s for s in (self.files, self.listings, self.commands,
                                      self.existing, self.missing, self.mode_dirs))

    def freeze(self) -> FileTree:
        return FileTree(files=self.files, listings=self.listings, commands=self.commands,
                        existing=frozenset(self.existing), missing=frozenset(self.missing),
                        modes=self.modes)


def _lines_to_text(body: list[str], kind: str) -> str:
    text = "".join(line + "\n" for line in body)
    return text[:-1] if kind == "P" else text


def _read_record(reader: _DumpReader, builder: _TreeBuilder, kind: str, key: str) -> None:
    if kind in "FC":
        body, end = reader.escaped_body("EP")
        target = builder.files if kind == "F" else builder.commands
        target[key] = _lines_to_text(body, end)
    elif kind == "R":
        body, end = reader.raw_body()
        if end == "E":
            builder.files[key] = "\n".join(body)
        else:
            builder.missing.add(key)
    elif kind == "L":
        names, _ = reader.escaped_body("E")
        builder.listings[key] = tuple(sorted(names))
    elif kind == "A":
        start = reader.index
        lines, _ = reader.escaped_body("E")
        builder.mode_dirs.add(key)
        for offset, line in enumerate(lines):
            entry = parse_ls_line(line)
            if entry is None:
                raise reader.error(f"not an `ls -ln` line: {line[:60]!r}",
                                   line_index=start + offset)
            if entry:
                builder.modes[f"{key}/{entry[0]}"] = entry[1]
    elif kind == "X":
        builder.existing.add(key)
    elif kind == "M":
        builder.missing.add(key)
    else:
        raise reader.error(f"unknown record type {kind!r}", line_index=reader.index - 1)


def parse_dump(text: str, *, source: str = "probe output") -> FileTree:
    """Parse the framed output of PROBE_SCRIPT. ParseError (with line number) if malformed."""
    reader = _DumpReader(text, source)
    first = reader.next_line() if text else ""
    if first != f"{RS}V {PROBE_FORMAT}":
        raise reader.error(f"expected probe header {PROBE_FORMAT!r}, got {first[:60]!r}",
                           line_index=0)
    builder = _TreeBuilder()
    while True:
        header_index = reader.index
        line = reader.next_line()
        if line == RS + "Z":
            break
        if not line.startswith(RS) or len(line) < 3 or line[2] != " ":
            raise reader.error(f"expected a record header, got {line[:60]!r}",
                               line_index=header_index)
        kind, key = line[1], line[3:]
        if builder.seen(key):
            raise reader.error(f"duplicate record for {key!r}", line_index=header_index)
        _read_record(reader, builder, kind, key)
    for index in range(reader.index, len(reader.lines)):
        if reader.lines[index]:
            raise reader.error("unexpected text after the end-of-dump record", line_index=index)
    return builder.freeze()


def render_dump(tree: FileTree) -> str:
    """The dump text that ``parse_dump`` turns back into ``tree`` (F/L/C/X/M records only)."""
    out = [f"{RS}V {PROBE_FORMAT}\n"]
    for path in sorted(tree.files):
        out.append(f"{RS}F {path}\n")
        out.append(_escaped_body(tree.files[path]))
    for path in sorted(tree.listings):
        out.append(f"{RS}L {path}\n")
        out.extend(_escape_line(name) + "\n" for name in tree.listings[path])
        out.append(f"{RS}E\n")
    for name in sorted(tree.commands):
        out.append(f"{RS}C {name}\n")
        out.append(_escaped_body(tree.commands[name]))
    for directory, names in sorted(_mode_dirs(tree).items()):
        out.append(f"{RS}A {directory}\n")
        out.extend(f"{_mode_string(tree.modes[f'{directory}/{n}'])} 1 0 0 4096 Jan  1 00:00 "
                   f"{_escape_line(n)}\n" for n in names)
        out.append(f"{RS}E\n")
    out.extend(f"{RS}X {p}\n" for p in sorted(tree.existing))
    out.extend(f"{RS}M {p}\n" for p in sorted(tree.missing))
    out.append(f"{RS}Z\n")
    return "".join(out)


def _mode_dirs(tree: FileTree) -> dict[str, list[str]]:
    dirs: dict[str, list[str]] = {}
    for path in sorted(tree.modes):
        directory, _, name = path.rpartition("/")
        dirs.setdefault(directory, []).append(name)
    return dirs


def _mode_string(bits: int) -> str:
    """``ls``'s mode column of a regular file with these permission bits."""
    out = ["-"]
    for shift, special, mark in ((6, 0o4000, "s"), (3, 0o2000, "s"), (0, 0o1000, "t")):
        triple = bits >> shift
        out += ["r" if triple & 4 else "-", "w" if triple & 2 else "-"]
        if bits & special:
            out.append(mark if triple & 1 else mark.upper())
        else:
            out.append("x" if triple & 1 else "-")
    return "".join(out)


def _escape_line(line: str) -> str:
    return RS + line if line.startswith(RS) else line


def _escaped_body(text: str) -> str:
    lines = text.split("\n")
    partial = lines.pop()  # "" when the text ends with a newline (or is empty)
    body = "".join(_escape_line(line) + "\n" for line in lines)
    if partial:
        return f"{body}{_escape_line(partial)}\n{RS}P\n"
    return f"{body}{RS}E\n"


# --------------------------------------------------------------------------- tree_from_root


def _has_glob(part: str) -> bool:
    return any(c in _GLOB_CHARS for c in part)


def _expand(root: Path, pattern: str) -> Iterator[tuple[str, Path, bool]]:
    """(logical path, real path, explicit) for each path the probe would look at.

    The pattern splits after its last glob component: the glob part selects existing
    directories, the literal rest is expected in each of them (explicit). A pattern ending
    in a glob only yields what exists.
    """
    parts = pattern.split("/")
    globbed = [i for i, part in enumerate(parts) if _has_glob(part)]
    if not globbed:
        yield pattern, Path(str(root) + pattern), True
        return
    cut = globbed[-1] + 1
    head, tail = "/".join(parts[:cut]), "/".join(parts[cut:])
    for real in sorted(glob.glob(glob.escape(str(root)) + head)):
        logical = "/" + os.path.relpath(real, root)
        if not tail:
            yield logical, Path(real), False
        elif os.path.isdir(real):
            yield f"{logical}/{tail}", Path(real) / tail, True


def _read_text(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return None


def _read_files(root: Path, patterns: tuple[str, ...], builder: _TreeBuilder) -> None:
    for pattern in patterns:
        for logical, real, explicit in _expand(root, pattern):
            if not explicit and not real.is_file():
                continue
            text = None if real.is_dir() else _read_text(real)
            if text is None:
                builder.missing.add(logical)
            else:
                builder.files[logical] = text


def _list_dirs(root: Path, patterns: tuple[str, ...], builder: _TreeBuilder) -> None:
    for pattern in patterns:
        for logical, real, explicit in _expand(root, pattern):
            if real.is_dir():
                builder.listings[logical] = tuple(sorted(os.listdir(real)))
            elif explicit:
                builder.missing.add(logical)


def _read_modes(root: Path, builder: _TreeBuilder) -> None:
    for directory in PROBED_MODES:
        real = Path(str(root) + directory)
        if not real.is_dir():
            continue
        for entry in os.scandir(real):
            builder.modes[f"{directory}/{entry.name}"] = entry.stat(
                follow_symlinks=False).st_mode & 0o7777


def tree_from_root(root: Path) -> FileTree:
    """Read, under ``root``, what PROBE_SCRIPT reads under ``/`` (no commands are run)."""
    builder = _TreeBuilder()
    _read_files(root, PROBED_FILES, builder)
    _read_files(root, PROBED_RAW_FILES, builder)
    _list_dirs(root, PROBED_LISTINGS, builder)
    _read_modes(root, builder)
    for path in PROBED_EXISTENCE:
        target = Path(str(root) + path)
        if target.exists():
            builder.existing.add(path)
        else:
            builder.missing.add(path)
    return builder.freeze()
