"""The ``command`` workload: an argv template with ``{param}`` placeholders, and an output parser.

Placeholders are substituted per argv ELEMENT, in one pass: a value with spaces, quotes, ``;``,
``$(...)`` or ``{other}`` stays inside its one element, as data (no shell ever sees it).
``{{`` and ``}}`` are literal braces. The parser is a list of regexes with named groups
(each group a metric or a label) or JSON paths; every metric declares its unit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from fleet.errors import ConfigError, ParseError
from fleet.model import Facts, Measurement, ParamValue
from fleet.workloads.base import ParamSpec, Workload, format_param_value
from fleet.yamlnode import Node

CONFIG_KEYS = ("argv", "parse")
_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|[{}]")
_METRIC = re.compile(r"[a-z_][a-z0-9_]*")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")

Part = tuple[bool, str]  # (is_placeholder, literal text or parameter name)


def parse_template(element: str) -> tuple[Part, ...]:
    """``"--size={size}M"`` -> literal/placeholder parts; ValueError on a stray brace."""
    parts: list[Part] = []
    pos = 0
    for match in _TOKEN.finditer(element):
        if match.start() > pos:
            parts.append((False, element[pos:match.start()]))
        token = match.group(0)
        if match.group(1):
            parts.append((True, match.group(1)))
        elif token in ("{{", "}}"):
            parts.append((False, token[0]))
        else:
            raise ValueError(f"stray {token!r} at offset {match.start()} of {element!r}")
        pos = match.end()
    if pos < len(element):
        parts.append((False, element[pos:]))
    return tuple(parts)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    unit: str
    path: tuple[str | int, ...] = ()  # JSON only


@dataclass(frozen=True)
class OutputParser:
    format: Literal["regex", "json"]
    stream: Literal["stdout", "stderr"]
    metrics: tuple[MetricSpec, ...]
    patterns: tuple[re.Pattern[str], ...] = ()
    labels: tuple[str, ...] = ()

    def parse(self, text: str) -> tuple[Measurement, ...]:
        found = self._regex(text) if self.format == "regex" else self._json(text)
        seen = {m.metric for m in found}
        missing = [Measurement(m.name, None, m.unit) for m in self.metrics if m.name not in seen]
        return (*found, *missing)

    def _regex(self, text: str) -> tuple[Measurement, ...]:
        units = {m.name: m.unit for m in self.metrics}
        found: list[Measurement] = []
        for pattern in self.patterns:
            for match in pattern.finditer(text):
                groups = match.groupdict()
                labels = tuple((k, groups[k]) for k in self.labels if groups.get(k) is not None)
                for name, raw in groups.items():
                    if name in units and raw is not None:
                        found.append(Measurement(name, self._number(name, raw), units[name],
                                                 labels))
        return tuple(found)

    def _json(self, text: str) -> tuple[Measurement, ...]:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParseError(f"output is not JSON: {exc.msg} at line {exc.lineno}",
                             where=self.stream, hint="make the command print one JSON "
                             "document, or parse it with regex patterns") from None
        found: list[Measurement] = []
        for metric in self.metrics:
            value = _lookup(document, metric.path)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ParseError(f"metric {metric.name}: {_dotted(metric.path)} holds "
                                 f"{value!r}, not a number", where=self.stream,
                                 hint="point the path at a numeric field")
            found.append(Measurement(metric.name, float(value), metric.unit))
        return tuple(found)

    def _number(self, name: str, raw: str) -> float:
        if _NUMBER.fullmatch(raw.strip()) is None:
            raise ParseError(f"metric {name}: captured {raw!r}, not a number", where=self.stream,
                             hint="tighten the pattern's group to digits, e.g. ([0-9.]+)")
        return float(raw)


def _lookup(document: object, path: tuple[str | int, ...]) -> object:
    value = document
    for step in path:
        if isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value):
            value = value[step]
        elif isinstance(value, dict) and str(step) in value:
            value = value[str(step)]
        else:
            return None
    return value


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(map(str, path))


class CommandWorkload(Workload):
    kind = "command"

    def __init__(self, argv: tuple[str, ...], parser: OutputParser | None) -> None:
        self.argv = argv
        self.parser = parser
        self.template = tuple(parse_template(element) for element in argv)
        names = [text for parts in self.template for is_param, text in parts if is_param]
        self._params = tuple(ParamSpec(n, "scalar", description="argv placeholder")
                             for n in dict.fromkeys(names))

    def params(self) -> tuple[ParamSpec, ...]:
        return self._params

    def identity(self) -> Mapping[str, object]:
        return {"argv": list(self.argv)}

    def build(self, params: Mapping[str, ParamValue], facts: Facts | None) -> tuple[str, ...]:
        del facts
        missing = [p.name for p in self._params if p.name not in params]
        if missing:
            raise KeyError(f"argv placeholders without a value: {', '.join(missing)}")
        return tuple("".join(format_param_value(params[text]) if is_param else text
                             for is_param, text in parts) for parts in self.template)

    def parse(self, stdout: str, stderr: str, exit_code: int) -> tuple[Measurement, ...]:
        if self.parser is None:
            return ()
        if exit_code != 0:  # a failed run's numbers are not results
            return tuple(Measurement(m.name, None, m.unit) for m in self.parser.metrics)
        return self.parser.parse(stdout if self.parser.stream == "stdout" else stderr)


# ---- configuration from the suite entry ----------------------------------------------------


def configure(config: Mapping[str, Node], where: str) -> CommandWorkload:
    """``argv:`` (required, list of strings) and optional ``parse:``, from the suite entry."""
    if "argv" not in config:
        raise ConfigError("a command workload needs 'argv'", where=where,
                          hint="add argv: [program, '--flag', '{param}']")
    items = config["argv"].sequence("argv")
    if not items:
        raise config["argv"].error("argv is empty", hint="give at least the program to run")
    for item in items:
        try:
            parse_template(item.string("an argv element"))
        except ValueError as exc:
            raise item.error(f"bad placeholder: {exc}", hint="write {name}, or {{ and }} "
                             "for literal braces") from None
    parser = _parser(config["parse"]) if "parse" in config else None
    return CommandWorkload(tuple(i.string("an argv element") for i in items), parser)


def _parser(node: Node) -> OutputParser:
    items = node.fields("parse", required=("metrics",),
                        optional=("format", "stream", "patterns", "labels"))
    fmt = items["format"].string("parse.format") if "format" in items else "regex"
    stream = items["stream"].string("parse.stream") if "stream" in items else "stdout"
    if fmt not in ("regex", "json"):
        raise items["format"].error(f"parse.format must be regex or json, not {fmt!r}",
                                    hint="regex: patterns with named groups; json: paths")
    if stream not in ("stdout", "stderr"):
        raise items["stream"].error(f"parse.stream must be stdout or stderr, not {stream!r}",
                                    hint="name where the program prints its numbers")
    source: Literal["stdout", "stderr"] = "stdout" if stream == "stdout" else "stderr"
    metrics = _metrics(items["metrics"], json_paths=fmt == "json")
    if fmt == "json":
        for key in ("patterns", "labels"):
            if key in items:
                raise items[key].error(f"parse.{key} is for format: regex",
                                       hint="JSON metrics take a path")
        return OutputParser("json", source, metrics)
    if "patterns" not in items:
        raise node.error("regex parsing needs patterns", hint="add patterns: ['x=(?P<x>[0-9.]+)']")
    patterns = tuple(_compile(p) for p in items["patterns"].sequence("parse.patterns"))
    labels = items["labels"].strings("parse.labels") if "labels" in items else ()
    _check_groups(node, patterns, metrics, labels)
    return OutputParser("regex", source, metrics, patterns, labels)


def _metrics(node: Node, *, json_paths: bool) -> tuple[MetricSpec, ...]:
    specs: list[MetricSpec] = []
    for name, value in node.mapping("parse.metrics").items():
        if _METRIC.fullmatch(name) is None:
            raise value.error(f"metric name {name!r} is not [a-z_][a-z0-9_]*",
                              hint="use snake_case, e.g. populate_seconds")
        fields = value.fields(f"metric {name}", required=("unit", *(("path",) if json_paths
                                                                   else ())))
        unit = fields["unit"].string(f"metric {name} unit")
        if not unit.strip():
            raise fields["unit"].error(f"metric {name} has an empty unit",
                                      hint="e.g. seconds, bytes, pages")
        path: tuple[str | int, ...] = ()
        if json_paths:
            dotted = fields["path"].string(f"metric {name} path")
            path = tuple(int(p) if p.lstrip("-").isdigit() else p for p in dotted.split("."))
        specs.append(MetricSpec(name, unit, path))
    if not specs:
        raise node.error("parse.metrics is empty", hint="declare at least one metric")
    return tuple(specs)


def _compile(node: Node) -> re.Pattern[str]:
    text = node.string("a pattern")
    try:
        return re.compile(text, re.MULTILINE)
    except re.error as exc:
        raise node.error(f"bad regex: {exc}",
                         hint="Python re syntax; YAML single quotes keep backslashes") from None


def _check_groups(node: Node, patterns: tuple[re.Pattern[str], ...],
                  metrics: tuple[MetricSpec, ...], labels: tuple[str, ...]) -> None:
    groups = {g for p in patterns for g in p.groupindex}
    declared = {m.name for m in metrics}
    for group in sorted(groups - declared - set(labels)):
        raise node.error(f"pattern group {group!r} is neither a metric nor a label",
                         hint="declare it under metrics (with a unit) or labels")
    for name in [*sorted(declared - groups), *sorted(set(labels) - groups)]:
        raise node.error(f"{name!r} is no named group of any pattern",
                         hint=f"capture it with (?P<{name}>...)")
    overlap = declared & set(labels)
    if overlap:
        raise node.error(f"{sorted(overlap)[0]!r} is both a metric and a label",
                         hint="drop it from labels or from metrics")
