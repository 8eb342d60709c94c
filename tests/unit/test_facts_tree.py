"""The probe dump framing: PROBE_SCRIPT output -> parse_dump -> FileTree, and tree_from_root."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.errors import ParseError
from fleet.facts.probe import PROBE_SCRIPT
from fleet.facts.tree import FileTree, parse_dump, render_dump, tree_from_root

RS = "\x1e"
HEADER = f"{RS}V fleet-probe 1\n"


def probe(root: Path) -> FileTree:
    """Run the real probe script against a fixture root (passed as $1, never interpolated)."""
    done = subprocess.run(["sh", "-c", PROBE_SCRIPT, "sh", str(root)],
                          capture_output=True, check=True, timeout=60)
    assert done.stderr == b""
    return parse_dump(done.stdout.decode("utf-8"))


def test_probe_of_node_exporter_tree_equals_tree_from_root(node_exporter_sys_root: Path) -> None:
    expected = tree_from_root(node_exporter_sys_root)
    assert probe(node_exporter_sys_root) == expected
    assert expected.text("/sys/devices/system/node/node1/cpulist") == "2-3\n"
    assert expected.listing("/sys/devices/system/node") == ("node0", "node1", "node2")
    assert "/proc/meminfo" in expected.missing
    assert "/dev/kvm" in expected.missing
    assert expected.matching("/sys/devices/system/cpu/cpu[0-9]*/topology/physical_package_id") \
        == tuple(f"/sys/devices/system/cpu/cpu{i}/topology/physical_package_id"
                 for i in range(4))


def test_probe_of_procfs_tree_equals_tree_from_root(procfs_root: Path) -> None:
    expected = tree_from_root(procfs_root)
    assert probe(procfs_root) == expected
    cpuinfo = expected.text("/proc/cpuinfo")
    assert cpuinfo is not None
    assert cpuinfo.count("processor\t:") == 8
    assert "/sys/devices/system/node/node1/cpulist" in expected.missing


def test_missing_and_unreadable_files_are_missing_not_empty(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "meminfo").write_text("")
    (tmp_path / "proc" / "cmdline").mkdir()  # a directory where a file is expected
    tree = probe(tmp_path)
    assert tree == tree_from_root(tmp_path)
    assert tree.text("/proc/meminfo") == ""
    assert tree.text("/proc/cmdline") is None
    assert {"/proc/cmdline", "/proc/sys/kernel/numa_balancing", "/proc/cpuinfo",
            "/sys/devices/system/node"} <= tree.missing
    assert tree.files.keys() == {"/proc/meminfo"}


def test_parse_dump_records() -> None:
    dump = (HEADER + f"{RS}F /a\nx\n{RS}{RS}y\n{RS}E\n" + f"{RS}F /b\nno newline\n{RS}P\n"
            + f"{RS}R /c\nraw\n\n{RS}E\n" + f"{RS}R /d\npartial\n{RS}U\n"
            + f"{RS}L /dir\nb\na\n{RS}E\n" + f"{RS}C numactl -H\nout\n{RS}E\n"
            + f"{RS}X /dev/kvm\n{RS}M /gone\n{RS}Z\n")
    tree = parse_dump(dump)
    assert tree.files == {"/a": f"x\n{RS}y\n", "/b": "no newline", "/c": "raw\n"}
    assert tree.listings == {"/dir": ("a", "b")}
    assert tree.commands == {"numactl -H": "out\n"}
    assert tree.existing == {"/dev/kvm"}
    assert tree.missing == {"/gone", "/d"}
    assert tree.exists("/dev/kvm") and tree.exists("/dir") and not tree.exists("/gone")


@pytest.mark.parametrize(("dump", "line"), [
    ("", 1),
    ("hello\n", 1),
    (HEADER + f"{RS}F /a\nx\n", 5),  # truncated inside a record: ends after line 4
    (HEADER + f"{RS}F /a\nx\n{RS}E\n", 5),  # no end-of-dump record
    (HEADER + f"{RS}Q /a\n{RS}Z\n", 2),
    (HEADER + f"{RS}M /a\n{RS}M /a\n{RS}Z\n", 3),
    (HEADER + f"{RS}R /a\n{RS}X /b\n{RS}E\n{RS}Z\n", 3),
    (HEADER + f"{RS}F /a\n{RS}Z\n", 3),
    (HEADER + "stray\n" + f"{RS}Z\n", 2),
    (HEADER + f"{RS}Z\n\nafter\n", 4),
])
def test_malformed_dumps_name_the_line(dump: str, line: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_dump(dump, source="h")
    assert info.value.where == f"h:{line}"


def test_matching_does_not_cross_slashes() -> None:
    paths = ("/s/node0/cpulist", "/s/node0/x/cpulist", "/s/node12/cpulist")
    tree = FileTree(files=dict.fromkeys(paths, ""))
    assert tree.matching("/s/node[0-9]*/cpulist") == ("/s/node0/cpulist", "/s/node12/cpulist")
    assert tree.matching("/s/*") == ()


keys = st.text(st.characters(exclude_characters="\n", exclude_categories=["Cs"]),
               min_size=1, max_size=20)
contents = st.text(st.characters(exclude_categories=["Cs"]), max_size=200)


@given(
    files=st.dictionaries(keys, contents, max_size=5),
    listings=st.dictionaries(keys, st.lists(keys, max_size=4), max_size=3),
    commands=st.dictionaries(keys, contents, max_size=2),
    existing=st.frozensets(keys, max_size=3),
    missing=st.frozensets(keys, max_size=3),
)
def test_render_parse_round_trip(files: dict[str, str], listings: dict[str, list[str]],
                                 commands: dict[str, str], existing: frozenset[str],
                                 missing: frozenset[str]) -> None:
    tree = FileTree(
        files={"/f" + k: v for k, v in files.items()},
        listings={"/l" + k: tuple(sorted(v)) for k, v in listings.items()},
        commands={"c" + k: v for k, v in commands.items()},
        existing=frozenset("/x" + k for k in existing),
        missing=frozenset("/m" + k for k in missing),
    )
    assert parse_dump(render_dump(tree)) == tree


shell_text = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]),
                     max_size=300)
kernel_text = st.text(st.characters(exclude_characters="\x00\x1e",
                                    exclude_categories=["Cs"]), max_size=300)


@settings(max_examples=40, deadline=None)
@given(meminfo=shell_text, cmdline=shell_text, thp=shell_text, cpuinfo=kernel_text)
def test_arbitrary_file_contents_survive_the_real_probe(meminfo: str, cmdline: str, thp: str,
                                                         cpuinfo: str) -> None:
    """Builtin-read files keep any text but NUL (RS included); cat-read files any but RS/NUL."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        written = {"/proc/meminfo": meminfo, "/proc/cmdline": cmdline,
                   "/sys/kernel/mm/transparent_hugepage/enabled": thp, "/proc/cpuinfo": cpuinfo}
        for path, text in written.items():
            target = root / path[1:]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(text.encode("utf-8"))
        tree = probe(root)
        for path, text in written.items():
            assert tree.text(path) == text
        assert tree == tree_from_root(root)
