"""Bad rows from the API: never fatal; each is quarantined or stored with a flag, and counted."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select

from ledger_etl.ledger import schema as s
from ledger_etl.simulator.faults import CORRUPTIONS
from tests.conftest import database_url_of, make_server, make_test_engine
from tests.integration.ledger_helpers import account_ids, ledger_amounts, truth, truth_amounts
from tests.reliability.dagster_run import materialize_partition
from tests.reliability.harness import (
    Measure,
    activity_count,
    cli_env,
    duplicated_keys,
    run_cli,
    run_totals,
    statement_folders,
    sync_args,
)
from tests.reliability.matrix import params

START, END = datetime(2025, 12, 20, tzinfo=UTC), datetime(2025, 12, 27, tzinfo=UTC)
# Stripped from notes; right-to-left overrides are kept as text, on rows flagged note_cleaned.
HOSTILE = ("\x00", "\x07")
RTL_OVERRIDE = "\u202e"


def _quarantine(engine) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return [(r.raw, r.reason) for r in conn.execute(select(s.quarantine))]


@pytest.mark.parametrize(("case", "backend"), params("bad_input_rows"))
def test_bad_rows_are_quarantined_or_flagged_and_counted(
    case: str,
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    corrupt = [
        {"endpoint": endpoint, "kind": kind, "fraction": 0.06}
        for kind in CORRUPTIONS
        for endpoint in ("transactions", "activity")
    ]
    server = make_server(
        start=date(2025, 12, 15), rate_limit_per_second=0, faults={"corrupt_rows": corrupt}
    )
    request.addfinalizer(server.stop)
    engine = make_test_engine(backend, tmp_path, request)
    exports = tmp_path / "exports"
    env = cli_env(server, database_url_of(engine), exports)
    accounts = account_ids(server)
    done = run_cli(sync_args(START, END), env)
    assert done.returncode == 0, done.stdout + done.stderr  # never fatal

    quarantine = _quarantine(engine)
    reasons = [reason for _, reason in quarantine]
    missing_reference = sum("reference" in r and "required" in r for r in reasons)
    compared = 0
    for account in accounts:
        expected = truth_amounts(server, account, START, END)
        stored = ledger_amounts(engine, account, START, END)
        assert set(stored) <= set(expected)  # nothing invented
        unexplained = [
            r for r in set(expected) - set(stored) if not any(r in q for q, _ in quarantine)
        ]
        assert len(unexplained) <= missing_reference, unexplained
        for reference, amount in stored.items():
            if amount != expected[reference]:  # a duplicate reference: its twin is quarantined
                assert any(reference in r and "conflicting" in r for r in reasons), reference
        activities = len(truth(server, "activity", account, START, END))
        assert activity_count(engine, account, START, END) <= activities
        compared += len(expected) + activities
    assert duplicated_keys(engine) == {}

    with engine.connect() as conn:
        flags = dict(conn.execute(
            select(s.ledger_entries.c.flags, func.count()).group_by(s.ledger_entries.c.flags)
        ).all())  # fmt: skip
        longest = conn.execute(select(func.max(func.length(s.ledger_entries.c.note)))).scalar()
        notes = [n for (n,) in conn.execute(select(s.ledger_entries.c.note)) if n]
    assert any("unknown_type" in f for f in flags) and any("note_cleaned" in f for f in flags)
    assert longest < 10_000
    assert not [n for n in notes if any(c in n for c in HOSTILE)]
    with engine.connect() as conn:
        rtl_flags = conn.execute(
            select(s.ledger_entries.c.flags).where(s.ledger_entries.c.note.contains(RTL_OVERRIDE))
        ).scalars().all()  # fmt: skip
    assert rtl_flags and all("note_cleaned" in f for f in rtl_flags)
    flagged_rows = sum(n for f, n in flags.items() if f)

    # The counts are in the run metadata: the ledger's run summary ...
    totals = run_totals(engine)
    assert totals["quarantined"] == len(quarantine) > 0
    assert totals["flagged"] >= flagged_rows > 0
    # ... and a Dagster run's asset metadata (on a ledger of its own: a row already quarantined
    # is not counted again).
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LEDGER_DATABASE_URL", f"sqlite:///{tmp_path / 'dagster.sqlite'}")
    with dg.instance_for_test() as instance:
        outcome = materialize_partition(instance, "2025-12", accounts[0])
    raw = [outcome["assets"][k] for k in ("raw_transactions", "raw_activity")]
    assert sum(m["quarantined"] for m in raw) > 0 and sum(m["flagged"] for m in raw) > 0

    # Published statements carry none of the control characters and verify.
    assert run_cli(["statement", "--month", "2025-12"], env).returncode == 0
    for account in accounts:
        folder = statement_folders(exports, account, "2025-12")[-1]
        text = (folder / "statement.csv").read_text(encoding="utf-8")
        assert not [c for c in HOSTILE if c in text]
    assert run_cli(["verify", str(exports)], env).returncode == 0
    Measure(case, backend, server).done(
        rows_compared=compared, quarantined=len(quarantine), flagged=flagged_rows,
        dagster_quarantined=sum(m["quarantined"] for m in raw),
        dagster_flagged=sum(m["flagged"] for m in raw),
    )  # fmt: skip
