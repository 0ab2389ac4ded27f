"""Sync into a real ledger (SQLite and PostgreSQL) and compare with the simulator's ground truth."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select

from ledger_etl.ledger import schema as s
from ledger_etl.ledger.coverage import stored_gaps
from ledger_etl.ledger.seen import last_seen_runs
from ledger_etl.ledger.store import ledger_digest
from ledger_etl.simulator import SimulatorServer
from tests.conftest import make_server
from tests.integration.ledger_helpers import (
    account_ids,
    count,
    ledger_amounts,
    sync,
    truth,
    truth_amounts,
)

YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR_END = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.slow
def test_twelve_months_two_accounts_equal_ground_truth(
    shared_sim: SimulatorServer, ledger_engine: Engine
) -> None:
    report = sync(shared_sim, ledger_engine, YEAR_START, YEAR_END)
    assert report.ok
    accounts = account_ids(shared_sim)
    assert len(accounts) == 2
    for account in accounts:
        expected = truth_amounts(shared_sim, account, YEAR_START, YEAR_END)
        stored = ledger_amounts(ledger_engine, account, YEAR_START, YEAR_END)
        assert stored == expected  # every reference, every amount, exactly
        assert sum(stored.values(), Decimal(0)) == sum(expected.values(), Decimal(0))
        acts = truth(shared_sim, "activity", account, YEAR_START, YEAR_END)
        with ledger_engine.connect() as conn:
            stored_acts = conn.execute(
                select(func.count())
                .select_from(s.activities)
                .where(
                    s.activities.c.account_id == account,
                    s.activities.c.occurred_at < YEAR_END,
                )
            ).scalar_one()
        assert stored_acts == len(acts)
        for endpoint in ("transactions", "activity"):
            assert stored_gaps(ledger_engine, account, endpoint, YEAR_START, YEAR_END) == []
    # Running the same sync again adds nothing and changes nothing.
    digest = _digest(ledger_engine)
    entries = count(ledger_engine, s.ledger_entries)
    again = sync(shared_sim, ledger_engine, YEAR_START, YEAR_END)
    assert all(
        e.inserted == 0 and e.changed == 0 for a in again.accounts for e in a.endpoints.values()
    )
    assert count(ledger_engine, s.ledger_entries) == entries
    assert _digest(ledger_engine) == digest


def _digest(engine: Engine) -> str:
    with engine.connect() as conn:
        return ledger_digest(conn)


def test_resync_of_a_stored_month_adds_zero_rows(
    shared_sim: SimulatorServer, ledger_engine: Engine
) -> None:
    start, end = datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC)
    first = sync(shared_sim, ledger_engine, start, end)
    assert first.ok and sum(e.inserted for a in first.accounts for e in a.endpoints.values()) > 100
    counts = {
        t.name: count(ledger_engine, t)
        for t in (s.ledger_entries, s.activities, s.raw_transactions, s.raw_activities)
    }
    second = sync(shared_sim, ledger_engine, start, end)
    assert sum(e.inserted + e.changed for a in second.accounts for e in a.endpoints.values()) == 0
    assert {
        t.name: count(ledger_engine, t)
        for t in (s.ledger_entries, s.activities, s.raw_transactions, s.raw_activities)
    } == counts
    with ledger_engine.connect() as conn:
        for account in account_ids(shared_sim):
            for endpoint in ("transactions", "activity"):
                seen = last_seen_runs(conn, account, endpoint, start, end)
                assert seen and set(seen.values()) == {second.run_id}  # from the fetch log
    assert count(ledger_engine, s.runs) == 2
    assert count(ledger_engine, s.balance_observations) == 4  # two accounts, two syncs


def test_raw_rows_are_stored_as_the_api_sent_them(
    shared_sim: SimulatorServer, ledger_engine: Engine
) -> None:
    """The raw tables keep each row's JSON text from the response body, numbers as numbers."""
    start, end = datetime(2025, 6, 2, tzinfo=UTC), datetime(2025, 6, 9, tzinfo=UTC)
    account = account_ids(shared_sim)[0]
    assert sync(shared_sim, ledger_engine, start, end, [account]).ok
    for kind, key, table in (
        ("transactions", "transactions", s.raw_transactions),
        ("activity", "activities", s.raw_activities),
    ):
        response = httpx.get(
            f"{shared_sim.url}/_sim/truth/{kind}",
            timeout=120,
            params={"account": account, "from": start.isoformat(), "to": end.isoformat()},
        )
        response.raise_for_status()
        expected = json.loads(response.text, parse_float=Decimal)[key]
        with ledger_engine.connect() as conn:
            raws = conn.execute(
                select(table.c.raw).where(
                    table.c.account_id == account, table.c.date_utc >= start, table.c.date_utc < end
                )
            ).scalars()
            stored = [json.loads(raw, parse_float=Decimal) for raw in raws]
        assert len(stored) == len(expected) > 10
        canonical = sorted(json.dumps(r, sort_keys=True, default=repr) for r in stored)
        assert canonical == sorted(json.dumps(r, sort_keys=True, default=repr) for r in expected)


def test_overlapping_ranges_never_double(
    shared_sim: SimulatorServer, ledger_engine: Engine
) -> None:
    account = account_ids(shared_sim)[0]
    a, b, c = (datetime(2025, 3, d, h, tzinfo=UTC) for d, h in ((1, 0), (9, 13), (17, 0)))
    sync(shared_sim, ledger_engine, a, c, [account])
    digest = _digest(ledger_engine)
    for start, end in ((b, c), (a, b), (datetime(2025, 3, 5, 7, 30, tzinfo=UTC), c)):
        sync(shared_sim, ledger_engine, start, end, [account])
    assert _digest(ledger_engine) == digest
    assert ledger_amounts(ledger_engine, account, a, c) == truth_amounts(shared_sim, account, a, c)


def test_changed_row_is_updated_with_history(ledger_engine: Engine) -> None:
    """A stored row that comes back different is updated in place; its old version is kept."""
    server = make_server(rate_limit_per_second=0)
    try:
        account = account_ids(server)[0]
        start, end = datetime(2025, 5, 1, tzinfo=UTC), datetime(2025, 5, 4, tzinfo=UTC)
        sync(server, ledger_engine, start, end, [account])
        before = ledger_amounts(ledger_engine, account)
        server.simulator.faults.replace(
            {
                "corrupt_rows": [
                    {"endpoint": "transactions", "kind": "unknown_type", "fraction": 0.3}
                ]
            }
        )
        report = sync(server, ledger_engine, start, end, [account])
        changed = report.accounts[0].endpoints["transactions"].changed
        assert changed > 0
        assert ledger_amounts(ledger_engine, account) == before  # amounts unchanged
        with ledger_engine.connect() as conn:
            history = conn.execute(select(s.entry_history)).mappings().all()
            suspense = conn.execute(
                select(func.count())
                .select_from(s.ledger_entries)
                .where(
                    s.ledger_entries.c.ledger_account == "9999",
                    s.ledger_entries.c.flags.contains("unknown_type"),
                )
            ).scalar_one()
        assert len(history) == changed == suspense
        assert {h["previous"]["ledger_account"] for h in history} != {"9999"}
    finally:
        server.stop()


def test_bad_rows_are_quarantined_and_good_rows_stored(ledger_engine: Engine) -> None:
    server = make_server(
        rate_limit_per_second=0,
        faults={
            "corrupt_rows": [
                {"endpoint": "transactions", "kind": "bad_amount", "fraction": 0.05},
                {"endpoint": "transactions", "kind": "unknown_currency", "fraction": 0.05},
                {"endpoint": "transactions", "kind": "missing_reference", "fraction": 0.05},
                {"endpoint": "activity", "kind": "missing_date", "fraction": 0.05},
            ]
        },
    )
    try:
        account = account_ids(server)[0]
        start, end = datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 5, 1, tzinfo=UTC)
        report = sync(server, ledger_engine, start, end, [account])
        tx, act = (
            report.accounts[0].endpoints["transactions"],
            report.accounts[0].endpoints["activity"],
        )
        assert tx.quarantined >= 3 and act.quarantined >= 1
        with ledger_engine.connect() as conn:
            reasons = list(conn.execute(select(s.quarantine.c.endpoint, s.quarantine.c.reason)))
        text = " ".join(r.reason for r in reasons)
        assert "currency" in text and "reference" in text and ("size" in text or "amount" in text)
        assert len(reasons) == tx.quarantined + act.quarantined
        expected = truth_amounts(server, account, start, end)
        stored = ledger_amounts(ledger_engine, account, start, end)
        assert set(stored) < set(expected)  # nothing invented
        assert len(expected) - len(stored) <= tx.quarantined  # only bad rows are missing
        assert all(stored[ref] == expected[ref] for ref in stored)
        # A re-run quarantines the same rows again without duplicating them.
        sync(server, ledger_engine, start, end, [account])
        assert count(ledger_engine, s.quarantine) == len(reasons)
    finally:
        server.stop()


def test_demo_currency_codes_normalize_with_raw_kept(
    shared_sim: SimulatorServer, ledger_engine: Engine
) -> None:
    start, end = datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 2, 8, tzinfo=UTC)
    sync(shared_sim, ledger_engine, start, end)
    with ledger_engine.connect() as conn:
        pairs = set(
            conn.execute(
                select(s.ledger_entries.c.currency, s.ledger_entries.c.currency_raw).distinct()
            )
        )
    assert pairs == {("USD", "USDd"), ("EUR", "EURd")}


def test_the_planned_window_count_is_what_a_sync_fetches(
    shared_sim: SimulatorServer, tmp_path: Path
) -> None:
    """The progress bar's total: every top-level window of the sync, edge probes included, so it
    never ends past its total (64/62)."""
    from ledger_etl.ledger.db import make_engine
    from ledger_etl.sync import planned_windows

    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    start, end = datetime(2025, 3, 30, 12, tzinfo=UTC), datetime(2025, 4, 2, tzinfo=UTC)
    accounts = account_ids(shared_sim)
    report = sync(shared_sim, engine, start, end, accounts)
    assert report.ok
    with engine.connect() as conn:
        top_level = conn.execute(
            select(func.count())
            .select_from(s.fetch_log)
            .where(s.fetch_log.c.parent_start.is_(None))
        ).scalar_one()
    assert (
        top_level == planned_windows(start, end, len(accounts)) == (3 + 1) * 2 * len(accounts)
    )  # 3 tiles + the probe
