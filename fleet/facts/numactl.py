"""Parser for ``numactl -H`` / ``numactl --hardware`` output (numactl.c ``hardware()``).

Formats handled (see corpus numa_outputs/FORMATS.md): ``available: N nodes (ids)``, per node
``node N cpus: ...`` (empty for CPU-less nodes, ``0-13 (14)`` with --cpu-compress),
``node N size: M MB`` / ``<not available>``, ``node N free: ...``, then ``node distances:``
with a header and one row per node (old 3-wide and new 4-wide columns alike) or
``No distance information available.``. Leading/trailing spaces and ``#``/``>`` quote
residue are tolerated; text before and after the block is ignored. A line that starts like a
numactl line but does not match its format (e.g. two lines merged into one) is a ParseError
naming the line number and the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fleet.errors import ParseError
from fleet.facts.parsers import parse_cpulist

_AVAILABLE = re.compile(r"available: (\d+) nodes \(([0-9,\-]*)\)")
_NODE_LINE = re.compile(r"node (\d+) (cpus|size|free):(.*)")
_MEM = re.compile(r"(\d+) MB")
_DIST_HEADER = re.compile(r"node((?: +\d+)+)")
_DIST_ROW = re.compile(r"(\d+):((?: +\d+)+)")
_NO_DISTANCES = "No distance information available."


@dataclass(frozen=True)
class NumactlNode:
    node_id: int
    cpus: tuple[int, ...]
    size_mb: int | None  # None when numactl printed "<not available>"
    free_mb: int | None


@dataclass(frozen=True)
class NumactlHardware:
    nodes: tuple[NumactlNode, ...]
    # Matrix rows/columns in the order of distance_node_ids; None if no table was printed.
    distances: tuple[tuple[int, ...], ...] | None = None
    distance_node_ids: tuple[int, ...] = ()
    first_line: int = 1  # 1-based line of "available:" in the parsed text

    @property
    def node_ids(self) -> tuple[int, ...]:
        return tuple(n.node_id for n in self.nodes)

    def node(self, node_id: int) -> NumactlNode:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise KeyError(node_id)

    def distance(self, from_node: int, to_node: int) -> int | None:
        if self.distances is None:
            return None
        ids = self.distance_node_ids
        return self.distances[ids.index(from_node)][ids.index(to_node)]


def _clean(line: str) -> str:
    """Strip surrounding blanks and mail/markdown quote residue (``> ``, ``# ``)."""
    text = line.strip()
    while text[:1] in (">", "#"):
        text = text[1:].strip()
    return text


@dataclass
class _Block:
    source: str
    declared: tuple[int, ...]
    first_line: int
    cpus: dict[int, tuple[int, ...]] = field(default_factory=dict)
    size_mb: dict[int, int | None] = field(default_factory=dict)
    free_mb: dict[int, int | None] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)
    dist_ids: tuple[int, ...] | None = None
    dist_rows: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)
    no_distances: bool = False
    last_line: int = 0  # 1-based number of the last line that belonged to the block

    def error(self, number: int, line: str, what: str) -> ParseError:
        return ParseError(
            f"{what}: {line.strip()!r}",
            where=f"{self.source}:{number}",
            hint="give the unmodified output of `numactl -H`, one record per line",
        )

    def missing_fields(self, node_id: int) -> list[str]:
        present = {"cpus": node_id in self.cpus, "size": node_id in self.size_mb,
                   "free": node_id in self.free_mb}
        return [name for name, found in present.items() if not found]

    def nodes_complete(self) -> bool:
        return not any(self.missing_fields(n) for n in self.declared)

    def table_complete(self) -> bool:
        return self.dist_ids is None or len(self.dist_rows) == len(self.dist_ids)


def _node_field(block: _Block, number: int, raw: str, text: str) -> bool:
    match = _NODE_LINE.fullmatch(text)
    if match is None:
        if text.startswith("node ") and not _DIST_HEADER.fullmatch(text):
            raise block.error(number, raw, "malformed numactl node line")
        return False
    node_id, kind, rest = int(match.group(1)), match.group(2), match.group(3).strip()
    if node_id not in block.declared:
        raise block.error(number, raw, f"node {node_id} is not in the available list")
    if kind not in block.missing_fields(node_id):
        raise block.error(number, raw, f"second 'node {node_id} {kind}' line")
    if node_id not in block.order:
        block.order.append(node_id)
    if kind == "cpus":
        block.cpus[node_id] = _cpus(block, number, raw, rest)
        return True
    mem = _MEM.fullmatch(rest)
    if mem is None and rest != "<not available>":
        raise block.error(number, raw, f"malformed numactl node {kind} line")
    table = block.size_mb if kind == "size" else block.free_mb
    table[node_id] = int(mem.group(1)) if mem else None
    return True


def _cpus(block: _Block, number: int, raw: str, rest: str) -> tuple[int, ...]:
    tokens = rest.split()
    count = None
    if tokens and re.fullmatch(r"\(\d+\)", tokens[-1]):  # --cpu-compress: "0-13 (14)"
        count = int(tokens.pop()[1:-1])
    if not all(re.fullmatch(r"\d+(?:-\d+)?", t) for t in tokens):
        raise block.error(number, raw, "malformed numactl cpus line")
    cpus = parse_cpulist(",".join(tokens), where=f"{block.source}:{number}")
    if count is not None and count != len(cpus):
        raise block.error(number, raw, f"cpu count ({count}) does not match the list")
    return cpus


def _distance_line(block: _Block, number: int, raw: str, text: str) -> bool:
    header = _DIST_HEADER.fullmatch(text)
    if header is not None and block.dist_ids is None:
        block.dist_ids = tuple(int(x) for x in header.group(1).split())
        return True
    row = _DIST_ROW.fullmatch(text)
    if row is None or block.dist_ids is None or block.table_complete():
        return False
    values = tuple(int(x) for x in row.group(2).split())
    expected = block.dist_ids[len(block.dist_rows)]
    if int(row.group(1)) != expected or len(values) != len(block.dist_ids):
        raise block.error(number, raw, f"distance row does not fit the header {block.dist_ids}")
    block.dist_rows.append((expected, values))
    return True


def _feed(block: _Block, number: int, raw: str) -> bool:
    """Consume one line of the block; False when the line is past the end of the block."""
    text = _clean(raw)
    if text == _NO_DISTANCES:
        block.no_distances = True
    elif not (text == "node distances:" or _distance_line(block, number, raw, text)
              or _node_field(block, number, raw, text)):
        return _past_end(block, number, raw, text)
    block.last_line = number
    return True


def _past_end(block: _Block, number: int, raw: str, text: str) -> bool:
    """A foreign line ends a complete block; inside an incomplete one it is an error.

    A blank line ends the block either way (``_finish`` then reports what is missing).
    """
    if text and not (block.nodes_complete() and block.table_complete()):
        raise block.error(number, raw, "unexpected line inside the numactl block")
    return False


def _finish(block: _Block) -> NumactlHardware:
    last_number = block.last_line
    for node_id in block.declared:
        missing = block.missing_fields(node_id)
        if missing:
            raise ParseError(
                f"node {node_id} has no {'/'.join(missing)} line",
                where=f"{block.source}:{last_number}",
                hint="give the complete output of `numactl -H`",
            )
    if not block.table_complete():
        raise ParseError("distance table is incomplete", where=f"{block.source}:{last_number}",
                         hint="give the complete output of `numactl -H`")
    nodes = [
        NumactlNode(n, block.cpus[n], block.size_mb[n], block.free_mb[n]) for n in block.order
    ]
    matrix = tuple(values for _, values in block.dist_rows) if block.dist_rows else None
    return NumactlHardware(
        nodes=tuple(nodes),
        distances=matrix,
        distance_node_ids=block.dist_ids or (),
        first_line=block.first_line,
    )


def parse_numactl_hardware(text: str, *, source: str = "numactl -H") -> NumactlHardware:
    """Parse the first ``numactl --hardware`` block found in ``text``.

    ``source`` names the text in errors (file path or ``host: numactl -H``).
    """
    lines = text.split("\n")
    for index, raw in enumerate(lines):
        match = _AVAILABLE.fullmatch(_clean(raw))
        if match is None:
            continue
        ids = parse_cpulist(match.group(2), where=f"{source}:{index + 1}")
        block = _Block(source=source, declared=ids, first_line=index + 1, last_line=index + 1)
        if len(ids) != int(match.group(1)):
            raise block.error(index + 1, raw, "node count does not match the node list")
        for number, line in enumerate(lines[index + 1:], start=index + 2):
            if not _feed(block, number, line):
                break
        return _finish(block)
    raise ParseError("no 'available: N nodes' line", where=source,
                     hint="give the output of `numactl -H`")
