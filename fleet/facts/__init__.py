"""Host facts: one probe command per host, pure parsers, and the Facts builder.

Flow: run ``["sh", "-c", PROBE_SCRIPT]`` on the host -> ``parse_dump(stdout)`` -> FileTree ->
``build_facts(host, tree, collected_at_unix_seconds=...)`` -> Facts.
"""

from fleet.facts.build import build_facts, fingerprint
from fleet.facts.numactl import NumactlHardware, NumactlNode, parse_numactl_hardware
from fleet.facts.probe import NUMACTL_COMMAND, PROBE_FORMAT, PROBE_SCRIPT
from fleet.facts.tree import FileTree, parse_dump, render_dump, tree_from_root

__all__ = [
    "NUMACTL_COMMAND",
    "PROBE_FORMAT",
    "PROBE_SCRIPT",
    "FileTree",
    "NumactlHardware",
    "NumactlNode",
    "build_facts",
    "fingerprint",
    "parse_dump",
    "parse_numactl_hardware",
    "render_dump",
    "tree_from_root",
]
