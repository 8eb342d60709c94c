"""`fleet run` between variant groups: the host is provisioned once per group (before the
group's first case, with its session dropped), every attempt of a declared variant carries the
verified identity, a failed variant fails its cases with the reason without trying again, and
a lost session makes the next case verify the variant again. Scripted sessions and a scripted
provisioner (the real one is exercised on an emulated lab host: test_kvm_modules.py)."""

from __future__ import annotations

from collections.abc import Callable

from test_execute_worker import Host, Session, run

from fleet.config.suite import parse_suite
from fleet.errors import VariantBootError
from fleet.execute.events import HostNotice, HostProvisioned, event_json
from fleet.execute.executor import Execution
from fleet.execute.variants import HostVariants, Progress, Provisioned, split_variant
from fleet.execute.worker import CaseRuntime
from fleet.plan.matrix import expand
from fleet.runs import JobKey
from fleet.variant import VariantIdentity

SUITE = """\
schema_version: 1
name: unit
workloads:
  - name: nap
    type: sleep
    params: {seconds: 0.01}
    axes:
      kernel: [stock, patched]
"""


def identity(name: str) -> VariantIdentity:
    return VariantIdentity(variant=name, kind="kvm_modules" if name == "patched" else "package",
                           kernel_release="6.1.0-41-amd64",
                           kvm_modules=(("kvm", f"srcversion:{name.upper()}"),),
                           cmdline="root=/dev/vda", series_sha256="ab" if name == "patched"
                           else None)


class Provisioner:
    def __init__(self, host: Host, *, broken: frozenset[str] = frozenset()) -> None:
        self.host = host
        self.broken = broken
        self.calls: list[str] = []
        self.open_sessions_seen: list[int] = []

    def __call__(self, name: str, progress: Progress) -> Provisioned:
        self.calls.append(name)
        progress(f"{self.host.name}: installing {name}")
        if name in self.broken:
            raise VariantBootError(f"variant {name} (6.12.9) did not boot: no SSH in 300 s; "
                                   "power-cycled, back on its last good kernel 6.1.0-41-amd64",
                                   where=self.host.name, hint="fix the variant",
                                   back_on="6.1.0-41-amd64")
        return Provisioned(identity(name), None)


def variant_setup(host: Host, order: list[str], reps: int = 2,
                  broken: frozenset[str] = frozenset()
                  ) -> tuple[Execution, dict[str, Callable[[], Session]], Provisioner,
                             dict[str, str]]:
    parsed = parse_suite(SUITE, source="unit.yml")
    workloads = {e.name: e.workload for e in parsed.entries}
    runtimes = {c.case_id: CaseRuntime(c, workloads[c.workload]) for c in expand(parsed)}
    by_kernel = {str(dict(rt.case.variant)["kernel"]): cid for cid, rt in runtimes.items()}
    queue = tuple(JobKey(by_kernel[k], r, None) for k in order for r in range(1, reps + 1))
    provisioner = Provisioner(host, broken=broken)
    execution = Execution("r1", runtimes, {"h1": queue}, {},
                          {cid: frozenset({"h1"}) for cid in runtimes},
                          variants={"h1": HostVariants(frozenset({"stock", "patched"}),
                                                       provisioner)})
    return execution, {"h1": host.open}, provisioner, by_kernel


def test_split_variant_takes_only_a_declared_kernel_name() -> None:
    names = frozenset({"v61"})
    assert split_variant((("kernel", "v61"), ("kvm.eager_page_split", "N")), names) == \
        ("v61", (("kvm.eager_page_split", "N"),))
    assert split_variant((("kernel", "6.1.0-41-amd64"),), names) == \
        (None, (("kernel", "6.1.0-41-amd64"),))


def test_each_group_is_provisioned_once_and_its_attempts_carry_the_identity() -> None:
    host = Host("h1")
    execution, openers, provisioner, by_kernel = variant_setup(host, ["stock", "patched"])
    attempts, events = run(execution, openers)
    assert provisioner.calls == ["stock", "patched"]
    assert [a.status for a in attempts] == ["completed"] * 4
    for a in attempts:
        kernel = "stock" if a.job.case_id == by_kernel["stock"] else "patched"
        assert a.variant == identity(kernel)
    assert host.sessions == 2  # one per group: the session is dropped before a switch
    switched = [e for e in events if isinstance(e, HostProvisioned)]
    assert [e.switched.variant for e in switched] == ["stock", "patched"]
    line = event_json(switched[1])
    assert line is not None and line["identity"]["series_sha256"] == "ab"
    notices = [e.message for e in events if isinstance(e, HostNotice)]
    assert "provisioning variant stock" in notices and "installing patched" in notices


def test_a_variant_that_does_not_boot_fails_its_cases_once_with_the_reason() -> None:
    host = Host("h1")
    execution, openers, provisioner, by_kernel = variant_setup(
        host, ["patched", "stock"], reps=3, broken=frozenset({"patched"}))
    attempts, _ = run(execution, openers)
    assert provisioner.calls == ["patched", "stock"]  # not once per case
    failed = [a for a in attempts if a.job.case_id == by_kernel["patched"]]
    assert [a.status for a in failed] == ["failed"] * 3
    assert all(a.error is not None and a.error.startswith(
        "variant patched was not provisioned: h1: variant patched (6.12.9) did not boot")
        for a in failed)
    assert all(a.variant is None for a in failed)
    assert [a.status for a in attempts if a.job.case_id == by_kernel["stock"]] == \
        ["completed"] * 3
    assert len(host.runs) == 3  # only the stock cases ran


def test_a_lost_session_verifies_the_variant_again() -> None:
    host = Host("h1", run_failures=1)
    execution, openers, provisioner, _ = variant_setup(host, ["stock"], reps=2)
    attempts, _ = run(execution, openers)
    assert provisioner.calls == ["stock", "stock"]
    assert [a.status for a in attempts] == ["error", "completed", "completed"]
    assert all(a.variant == identity("stock") for a in attempts)
