"""Located YAML: the suite file's text, its node tree, and the Node every config reader walks.

Every error is a ConfigError at file:line. The text must be UTF-8; nesting is bounded (PyYAML's
composer recurses once per level); merge keys (``<<: *x``) are expanded once per mapping
(memoised: aliases cannot multiply the work), cycles and deep merge chains are refused.
"""

from __future__ import annotations

import codecs
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import yaml

from fleet.errors import ConfigError
from fleet.model import ParamValue

_S = TypeVar("_S", str, int, bool)
_TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "str"}


def type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


_EXPONENT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def yaml11_float(value: object) -> str | None:
    """For text such as ``1e12`` (a number to YAML 1.2 and to people, text to YAML 1.1, which
    PyYAML reads), how to write it as a YAML 1.1 float: ``1.0e+12``; None for other values."""
    if not isinstance(value, str) or _EXPONENT_TEXT.fullmatch(value) is None:
        return None
    mantissa, _, exponent = value.lower().partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return f"{mantissa}e{exponent if exponent[0] in '+-' else '+' + exponent}"



_MERGE_TAG = "tag:yaml.org,2002:merge"
MAX_NESTING_DEPTH = 64  # lists and mappings inside each other; suites need fewer than 10
MAX_MERGE_DEPTH = 16  # merge keys (<<: *x) whose merged mapping merges again, and so on
_SCALAR_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
}


def read_suite_text(path: Path) -> str:
    """The suite file's text; ConfigError when it cannot be read or is not UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read suite: {exc.strerror}", where=str(path),
                          hint="check the path") from None
    return decode_suite(data, source=str(path))


_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
         (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


def decode_suite(data: bytes, *, source: str) -> str:
    """UTF-8 bytes -> text; ConfigError naming the encoding, or the first bad byte's offset
    and line."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            raise ConfigError(f"the file is {encoding} (it starts with a byte order mark), not "
                              "UTF-8", where=f"{source}:1",
                              hint=f"convert it: iconv -f {encoding} -t UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset "
                          f"{exc.start} ({exc.reason})", where=f"{source}:{line}",
                          hint="a suite is UTF-8 text; is this a binary file?") from None


class _DepthLimitedLoader(yaml.SafeLoader):
    """PyYAML's composer recurses once per nesting level: refuse deep nesting with its line
    before Python's recursion limit turns it into a crash."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_NESTING_DEPTH:
                raise _TooDeep(self.peek_event().start_mark.line + 1)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def compose(text: str, source: str) -> yaml.Node | None:
    """The YAML document's node tree (None: empty); ConfigError at file:line when the text is
    not YAML or nests lists and mappings more than MAX_NESTING_DEPTH deep."""
    loader: _DepthLimitedLoader | None = None
    try:
        loader = _DepthLimitedLoader(text)  # checks the characters
        return loader.get_single_node()
    except _TooDeep as exc:
        raise ConfigError(f"lists and mappings nested more than {MAX_NESTING_DEPTH} deep",
                          where=f"{source}:{exc.line}",
                          hint="a suite nests a few levels; check the brackets") from None
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, source) from None
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_error(exc: yaml.YAMLError, text: str, source: str) -> ConfigError:
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow
        line = text.count("\n", 0, exc.position) + 1
        return ConfigError(f"not text: character #x{exc.character:04x} is not allowed in YAML",
                           where=f"{source}:{line}",
                           hint="is this a binary file? a suite is UTF-8 text")
    where = f"{source}:{mark.line + 1}" if mark is not None else source
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return ConfigError(f"not valid YAML: {problem}", where=where, hint="fix the YAML syntax")


class _Merged:
    """One document's merged mappings: each computed once, however many merge keys name it
    (without this, N aliases per level cost N**levels), and merge cycles refused."""

    def __init__(self) -> None:
        self.done: dict[int, tuple[yaml.Node, list[tuple[Node, str, Node]]]] = {}
        self.active: set[int] = set()


class Node:
    """A YAML node that knows its file:line; every accessor raises ConfigError there."""

    def __init__(self, node: yaml.Node, source: str, merged: _Merged | None = None) -> None:
        self.node = node
        self.source = source
        self._merged = merged if merged is not None else _Merged()

    def _child(self, node: yaml.Node) -> Node:
        return Node(node, self.source, self._merged)

    @property
    def where(self) -> str:
        return f"{self.source}:{self.node.start_mark.line + 1}"

    def error(self, what: str, hint: str | None = None) -> ConfigError:
        return ConfigError(what, where=self.where, hint=hint)

    def mapping(self, what: str) -> dict[str, Node]:
        """Keys (strings, no duplicates) -> value nodes, in file order."""
        return {name: value for _, name, value in self._pairs(what)}

    def _pairs(self, what: str, depth: int = 0) -> list[tuple[Node, str, Node]]:
        """(key, name, value) in file order; merged (``<<: *x``) keys yield to explicit ones."""
        if not isinstance(self.node, yaml.MappingNode):
            raise self.error(f"{what} must be a mapping", hint="write 'key: value' lines")
        key = id(self.node)
        done = self._merged.done.get(key)
        if done is not None:
            return done[1]
        if key in self._merged.active:
            raise self.error(f"{what} merges itself (<<: names a mapping it is part of)",
                             hint="merge a mapping defined elsewhere")
        if depth > MAX_MERGE_DEPTH:
            raise self.error(f"merge keys (<<) nested more than {MAX_MERGE_DEPTH} deep",
                             hint="merge fewer levels of anchors")
        self._merged.active.add(key)
        try:
            pairs = self._own_pairs(what, depth)
        finally:
            self._merged.active.discard(key)
        self._merged.done[key] = (self.node, pairs)
        return pairs

    def _own_pairs(self, what: str, depth: int) -> list[tuple[Node, str, Node]]:
        explicit: dict[str, tuple[Node, str, Node]] = {}
        merged: dict[str, tuple[Node, str, Node]] = {}
        for key_node, value_node in self.node.value:
            if key_node.tag == _MERGE_TAG:
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) \
                    else [value_node]
                for source in sources:
                    for pair in self._child(source)._pairs(what, depth + 1):
                        merged.setdefault(pair[1], pair)
                continue
            key = self._child(key_node)
            name = key.string(f"a key of {what}")
            if name in explicit:
                raise key.error(f"duplicate key {name!r} in {what}", hint="give each key once")
            explicit[name] = (key, name, self._child(value_node))
        return list({**merged, **explicit}.values())

    def fields(self, what: str, *, required: Sequence[str] = (),
               optional: Sequence[str] = ()) -> dict[str, Node]:
        """A mapping whose keys are all known; unknown keys and missing required keys fail."""
        pairs = self._pairs(what)
        known = [*required, *optional]
        for key, name, _ in pairs:
            if name not in known:
                raise key.error(f"unknown key {name!r} in {what}",
                                hint=f"known keys: {', '.join(sorted(set(known)))}")
        items = {name: value for _, name, value in pairs}
        missing = [k for k in required if k not in items]
        if missing:
            raise self.error(f"{what} lacks {', '.join(map(repr, missing))}",
                             hint=f"add {missing[0]}: ...")
        return items

    def sequence(self, what: str) -> list[Node]:
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.error(f"{what} must be a list", hint="write '- item' lines or [a, b]")
        return [self._child(n) for n in self.node.value]

    def scalar(self, what: str) -> ParamValue:
        """A YAML string, int, float or bool (null, lists and mappings are refused)."""
        if not isinstance(self.node, yaml.ScalarNode) or self.node.tag not in _SCALAR_TAGS:
            shown = "a list" if isinstance(self.node, yaml.SequenceNode) else \
                "a mapping" if isinstance(self.node, yaml.MappingNode) else \
                self.node.tag.rsplit(":", 1)[-1]
            raise self.error(f"{what} must be a string, number or boolean, not {shown}",
                             hint="write a scalar such as 3, 0.5, text or true")
        value = yaml.SafeLoader("").construct_object(self.node)
        assert isinstance(value, str | int | float | bool)
        return value

    def string(self, what: str) -> str:
        return self._typed(what, str, "a string")

    def boolean(self, what: str) -> bool:
        return self._typed(what, bool, "true or false")

    def integer(self, what: str, *, minimum: int | None = None) -> int:
        value = self._typed(what, int, "an integer")
        if minimum is not None and value < minimum:
            raise self.error(f"{what} must be >= {minimum}, not {value}",
                             hint=f"use {minimum} or more")
        return value

    def number(self, what: str, *, minimum: float | None = None) -> float:
        value = self.scalar(what)
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            written = yaml11_float(value)
            raise self.error(f"{what} must be a number, not {value!r}",
                             hint=f"YAML 1.1 reads {value} as text: write {written}"
                             if written else "write e.g. 30 or 0.5")
        if minimum is not None and value < minimum:
            raise self.error(f"{what} must be >= {minimum:g}, not {value!r}",
                             hint=f"use {minimum:g} or more")
        return float(value)

    def strings(self, what: str) -> tuple[str, ...]:
        """A list of strings (a single string counts as a list of one)."""
        if isinstance(self.node, yaml.ScalarNode):
            return (self.string(what),)
        return tuple(item.string(f"an item of {what}") for item in self.sequence(what))

    def _typed(self, what: str, kind: type[_S], expected: str) -> _S:
        value = self.scalar(what)
        if not isinstance(value, kind) or type(value) is not kind:
            raise self.error(f"{what} must be {expected}, not {type_name(value)} {value!r}",
                             hint="YAML quotes make strings: write 3, not '3'"
                             if kind is not str else "quote it: '...'")
        return value
