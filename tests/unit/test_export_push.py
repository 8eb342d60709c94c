"""What `fleet run --pushgateway` pushes per attempt equals what the exporter exports once the
attempt is stored (the real Pushgateway is in tests/integration/test_export_push.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_export_collector import RUN, samples, write_run

from fleet.errors import FleetError
from fleet.export import catalogue as cat
from fleet.export.prometheus import Selection, exposition_text, push_attempt
from fleet.export.series import attempt_series, sample_line
from fleet.store import Store
from fleet.store_runs import load_run

RESULT_FAMILIES = {e.name for e in cat.SAMPLER} | {cat.WORKLOAD_RESULT.name}


def test_attempt_series_equal_the_exported_results(tmp_path: Path) -> None:
    path = tmp_path / "fleet.sqlite"
    write_run(path)
    with Store.open(path) as store:
        detail = load_run(store, RUN)
        exported = {s for s in samples(exposition_text(store, Selection()))
                    if s[0] in RESULT_FAMILIES}
    pushed = [s for a in detail.attempts
              for s in attempt_series(RUN, "quickstart", a.attempt, "dd_zero_copy")]
    assert samples("".join(sample_line(s) for s in pushed)) == exported
    assert len(pushed) == len(exported) > 0  # the duplicate records_in is left out
    failed = [a.attempt for a in detail.attempts if a.attempt.status != "completed"]
    assert failed and all(attempt_series(RUN, "quickstart", a, "w") == [] for a in failed)


def test_a_push_to_nowhere_is_one_fleet_error_line(tmp_path: Path) -> None:
    path = tmp_path / "fleet.sqlite"
    write_run(path)
    with Store.open(path) as store:
        attempt = next(a.attempt for a in load_run(store, RUN).attempts
                       if a.attempt.status == "completed")
    with pytest.raises(FleetError) as caught:
        push_attempt("http://127.0.0.1:9", RUN, "quickstart", attempt, "dd_zero_copy",
                     timeout_seconds=2.0)
    line = caught.value.line()
    assert line.startswith("http://127.0.0.1:9: cannot push to the pushgateway:")
    assert "\n" not in line
