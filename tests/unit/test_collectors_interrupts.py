"""/proc/interrupts on the corpus: procfs, node_exporter, arm64, multi-socket hosts, a laptop."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.collectors.interrupts import Interrupts, cpu_nodes, parse_interrupts, sum_per_node
from fleet.errors import ParseError
from fleet.model import NumaNode, Topology

MULTISOCKET = "proc_interrupts_multisocket"


def load(corpus: Path, name: str) -> Interrupts:
    return parse_interrupts((corpus / name).read_text(), where=name)


def test_procfs_fixture_matches_the_go_test(corpus: Path) -> None:
    it = load(corpus, "procfs/fixtures/proc/interrupts")
    assert len(it.rows) == 47
    timer = it.row("0")
    assert timer is not None
    assert (timer.info, timer.devices, timer.counts) == ("IO-APIC", "2-edge timer", (49, 0, 0, 0))
    piw = it.row("PIW")
    assert piw is not None
    assert (piw.info, piw.devices, piw.counts) == ("Posted-interrupt wakeup event", "", (0,) * 4)
    loc = it.row("LOC")
    assert loc is not None
    assert (loc.info, loc.counts) == ("Local timer interrupts", (10196, 7429, 8542, 8229))
    err = it.row("ERR")
    assert err is not None
    assert (err.info, err.counts, err.per_cpu) == ("", (0,), False)
    assert it.per_cpu("TLB") == {0: 212, 1: 137, 2: 158, 3: 231}
    assert it.per_cpu("ERR") is None  # a single global value is not per CPU
    ahci = it.row("29")
    assert ahci is not None and ahci.devices == "512000-edge ahci[0000:00:1f.2]"


def test_node_exporter_fixture(corpus: Path) -> None:
    it = load(corpus, "node_exporter/fixtures/proc/interrupts")
    assert it.cpus == (0, 1, 2, 3)
    assert sum(r.per_cpu for r in it.rows) == 28  # x 4 CPUs = the 112 e2e samples
    assert it.per_cpu("TLB") == {0: 10460334, 1: 9918429, 2: 10494258, 3: 10345022}
    nmi = it.row("NMI")
    assert nmi is not None and nmi.counts[1] == 5031 and nmi.counts[3] == 4968
    kbd = it.row("12")
    assert kbd is not None and (kbd.info, kbd.devices) == ("IR-IO-APIC-edge", "i8042")
    usb = it.row("16")
    assert usb is not None and usb.devices == "ehci_hcd:usb1, mmc0"


def test_node_exporter_e2e_samples_agree(corpus: Path) -> None:
    """Every node_interrupts_total sample of the e2e output equals our count."""
    it = load(corpus, "node_exporter/fixtures/proc/interrupts")
    samples = 0
    for line in (corpus / "node_exporter/expected/e2e_interrupts.txt").read_text().splitlines():
        if not line.startswith("node_interrupts_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        row = it.row(labels["type"])
        per_cpu = it.per_cpu(labels["type"])
        assert row is not None and per_cpu is not None
        assert (row.info, row.devices) == (labels["info"], labels["devices"])
        assert per_cpu[int(labels["cpu"])] == float(line.rsplit(" ", 1)[1])
        samples += 1
    assert samples == 112


def test_aarch64_glued_labels_and_no_tlb_ipi(corpus: Path) -> None:
    it = load(corpus, "node_exporter/fixtures/proc/interrupts_aarch64")
    assert it.cpus == tuple(range(8))
    ipi0 = it.row("IPI0")
    assert ipi0 is not None and ipi0.counts[:2] == (2768808080, 2844211768)
    assert ipi0.info == "Rescheduling interrupts"
    res = it.ipi_row("RES")
    assert res is not None and res.name == "IPI0"
    cal = it.ipi_row("CAL")
    assert cal is not None and cal.name == "IPI1"
    assert it.ipi_row("TLB") is None  # arm64 broadcasts TLB invalidations in hardware
    err = it.row("Err")
    assert err is not None and err.counts == (0,)
    timer = it.row("10")
    assert timer is not None and (timer.info, timer.devices) == ("GICv3", "27 Level arch_timer")


def multisocket_cases(corpus_dir: Path) -> list[str]:
    expected = json.loads((corpus_dir / MULTISOCKET /
                           "EXPECTED_derived_by_reference_parser.json").read_text())
    return sorted(expected)


def test_every_multisocket_file_is_covered(corpus: Path) -> None:
    listed = set(multisocket_cases(corpus))
    on_disk = {f"{MULTISOCKET}/{p.name}" for p in (corpus / MULTISOCKET).glob("interrupts__*")
               if not p.name.endswith(".sysinfo.txt")}
    assert on_disk <= listed and len(on_disk) == 7


def test_against_the_reference_parser(corpus: Path) -> None:
    expected = json.loads((corpus / MULTISOCKET /
                           "EXPECTED_derived_by_reference_parser.json").read_text())
    for name, fields in expected.items():
        it = load(corpus, name)
        tlb = it.row("TLB")
        err = it.row("ERR")
        assert tlb is not None and err is not None
        got = {"cpus": len(it.cpus), "rows_total": len(it.rows),
               "rows_with_full_values": sum(r.per_cpu for r in it.rows),
               "TLB_sum": tlb.total, "TLB_cpu0": tlb.counts[0], "TLB_last": tlb.counts[-1],
               "ERR": str(err.counts[0]), "LOC_sum": it.total("LOC")}
        assert set(fields) <= set(got), name
        assert {k: got[k] for k in fields} == fields, name


def test_old_and_new_chip_formats(corpus: Path) -> None:
    old = load(corpus, f"{MULTISOCKET}/interrupts__deterministic_nehalem.txt")
    timer = old.row("0")
    assert timer is not None and (timer.info, timer.devices) == ("IO-APIC-edge", "timer")
    new = load(corpus, f"{MULTISOCKET}/interrupts__deterministic_fam15h.txt")
    usb = new.row("22")
    assert usb is not None and usb.info == "IO-APIC"
    assert usb.devices == "22-fasteoi ehci_hcd:usb3, ohci_hcd:usb4, ohci_hcd:usb5"


def test_myblackhole_laptop(corpus: Path) -> None:
    it = load(corpus, "more/interrupts__myblackhole-amd-16cpu.txt")
    assert it.cpus == tuple(range(16))
    tlb = it.row("TLB")
    assert tlb is not None
    assert (tlb.counts[0], tlb.total, tlb.counts[15]) == (338453, 4829055, 247085)
    assert it.total("CAL") == 130697578 and it.total("RES") == 3161758
    assert it.total("LOC") == 112832385 and it.total("NMI") == 5955
    err, mis = it.row("ERR"), it.row("MIS")
    assert err is not None and mis is not None and err.counts == mis.counts == (0,)
    assert sum(r.name.isdigit() for r in it.rows) == 67


def test_per_node_from_a_topology(corpus: Path) -> None:
    """fam17h (EPYC 7251) with a 4-node split of its 16 CPUs: nodes sum to the row total."""
    it = load(corpus, f"{MULTISOCKET}/interrupts__deterministic_fam17h.txt")
    topology = Topology(nodes=tuple(NumaNode(n, tuple(range(4 * n, 4 * n + 4)), None, None, ())
                                    for n in range(4)), socket_ids=(0,))
    per_node = it.per_node("TLB", cpu_nodes(topology))
    tlb = it.row("TLB")
    assert per_node is not None and tlb is not None
    assert sorted(per_node) == [0, 1, 2, 3]
    assert sum(per_node.values()) == tlb.total == 189281
    assert per_node[0] == sum(tlb.counts[:4])
    assert it.per_node("ERR", cpu_nodes(topology)) is None
    with pytest.raises(ParseError, match="CPU 15 is on no NUMA node"):
        it.per_node("TLB", {c: 0 for c in range(15)})


def test_hotplug_header_defines_the_columns() -> None:
    text = ("           CPU0       CPU2       CPU3\n"
            " TLB:          5          7         11   TLB shootdowns\n"
            " ERR:          0\n")
    it = parse_interrupts(text)
    assert it.cpus == (0, 2, 3)
    assert it.per_cpu("TLB") == {0: 5, 2: 7, 3: 11}
    assert sum_per_node({0: 5, 2: 7, 3: 11}, {0: 0, 2: 1, 3: 1}) == {0: 5, 1: 18}


@pytest.mark.parametrize(("text", "message"), [
    ("", "no CPU header"),
    ("  0:  1  2  IO-APIC timer\n", "header token"),
    ("   CPU0   CPU1\n  0:   1   x   IO-APIC\n", "1 counts where the header has 2"),
    ("   CPU0   CPU1   CPU2\n  0:   1   2\n", "2 counts where the header has 3"),
    ("   CPU0   CPU1\n TLB:  1  2\n TLB:  3  4\n", "appears twice"),
    ("   CPU0   CPU1\n garbage line\n", "no ':'"),
])
def test_malformed(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        it = parse_interrupts(text, where="host:/proc/interrupts")
        for row in it.rows:
            _ = row.counts  # counts are checked when first read


def test_errors_name_the_line() -> None:
    it = parse_interrupts("   CPU0   CPU1\n TLB:  1  2  x\n  7:  1\n   9: 1 2 3  IO-APIC\n")
    assert it.rows[1].counts == (1,)
    with pytest.raises(ParseError, match=r"<interrupts>:4: row '9' has more counts than"):
        _ = it.rows[2].counts


# --- round trip: the kernel's printf formats, random CPU sets and short rows ------------------

def render(cpus: list[int], rows: list[tuple[str, list[int], str]], style: str) -> str:
    """Print like the kernel: new " %10u" per count, old "%10u " (arm64 glues IPIn:<count>)."""
    lines = ["    " + "".join(f"CPU{c:<7d} " for c in cpus)]
    for name, counts, tail in rows:
        label = f"{name:>4}:" if style == "new" else f"{name}:"
        cell = " {:10d}" if style == "new" else "{:10d} "
        body = "".join(cell.format(c) for c in counts)
        lines.append(f"{label}{body}  {tail}".rstrip())
    return "\n".join(lines) + "\n"


names = st.one_of(st.integers(0, 4095).map(str),
                  st.sampled_from(["NMI", "LOC", "TLB", "CAL", "RES", "IPI0", "IPI6", "PIW"]))
tails = st.sampled_from(["", "IO-APIC   2-edge      timer", "IR-PCI-MSI 512000-edge ahci",
                         "TLB shootdowns", "GICv3  27 Level     arch_timer",
                         "ITS-MSI 65536 Edge      nvme0q0", "PCI-MSI 98304-edge xhci_hcd"])


@settings(max_examples=150, deadline=None)
@given(cpus=st.sets(st.integers(0, 511), min_size=2, max_size=40).map(sorted),
       data=st.data(), style=st.sampled_from(["new", "old"]))
def test_round_trip(cpus: list[int], data: st.DataObject, style: str) -> None:
    row_names = data.draw(st.lists(names, min_size=1, max_size=12, unique=True))
    counts = st.integers(0, 4_294_967_295)
    rows = [(n, data.draw(st.lists(counts, min_size=len(cpus), max_size=len(cpus))),
             data.draw(tails)) for n in row_names]
    short = data.draw(st.lists(st.sampled_from(["ERR", "MIS", "Err"]), unique=True))
    rows += [(n, [data.draw(counts)], "") for n in short if n not in row_names]
    it = parse_interrupts(render(cpus, rows, style))
    assert it.cpus == tuple(cpus)
    assert [r.name for r in it.rows] == [n for n, _, _ in rows]
    for (name, values, tail), row in zip(rows, it.rows, strict=True):
        assert row.counts == tuple(values)
        words = tail.split()
        if name.isdigit():
            assert (row.info, row.devices) == (words[0] if words else "", " ".join(words[1:]))
        else:
            assert (row.info, row.devices) == (" ".join(words), "")
        assert row.per_cpu == (len(values) == len(cpus))
