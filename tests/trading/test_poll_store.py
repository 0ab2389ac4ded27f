"""Polling the simulator into the store on both backends: rows only on change, answers as of
an instant from what was stored, instruments versioned, lifecycles folded from snapshots."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from ledger_etl.ledger.schema import (
    deal_lifecycles,
    instrument_versions,
    market_quotes,
    order_snapshots,
    position_snapshots,
    trading_polls,
)
from ledger_etl.trading import changelog
from ledger_etl.trading.poll import poll_account
from ledger_etl.trading.query import exposure_at, exposure_json, snapshot_rows
from tests.trading.conftest import account_ids, advance


def _count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_poll_stores_snapshots_once_and_answers_as_of(ledger_engine, frozen_sim, sim_client):
    account = account_ids(sim_client)[0]
    first = poll_account(sim_client, ledger_engine, account)
    assert first.status == "complete" and first.positions > 0 and not first.problems
    truth = frozen_sim.simulator.world.open_positions(0, first.observed_at)
    as_of, rows = snapshot_rows(ledger_engine, "position", account, None)
    assert as_of == first.observed_at
    assert {r["deal_id"] for r in rows} == {p.deal_id for p in truth}
    assert {r["deal_id"]: r["size"] for r in rows} == {p.deal_id: p.size_at(as_of) for p in truth}
    counts = {
        t.name: _count(ledger_engine, t)
        for t in (position_snapshots, order_snapshots, market_quotes, instrument_versions)
    }

    second = poll_account(sim_client, ledger_engine, account)  # the clock did not move
    assert second.rows_written == 0 and second.snapshot_rows == 0
    assert counts == {
        t.name: _count(ledger_engine, t)
        for t in (position_snapshots, order_snapshots, market_quotes, instrument_versions)
    }
    assert _count(ledger_engine, trading_polls) == 2

    advance(frozen_sim, 6 * 3600)
    third = poll_account(sim_client, ledger_engine, account)
    later = {p.deal_id for p in frozen_sim.simulator.world.open_positions(0, third.observed_at)}
    _, now_rows = snapshot_rows(ledger_engine, "position", account, None)
    assert {r["deal_id"] for r in now_rows} == later
    # Asked about the first instant, the store still answers what was open then.
    _, then_rows = snapshot_rows(ledger_engine, "position", account, first.observed_at)
    assert {r["deal_id"] for r in then_rows} == {p.deal_id for p in truth}
    _, between = snapshot_rows(
        ledger_engine, "position", account, first.observed_at + timedelta(hours=1)
    )
    assert {r["deal_id"] for r in between} == {p.deal_id for p in truth}
    with ledger_engine.connect() as conn:
        states = {r.deal_id: r.state for r in conn.execute(select(deal_lifecycles))}
        checked, problems = changelog.verify(conn)
    assert checked > 0 and problems == []
    for deal_id in {p.deal_id for p in truth} - later:
        assert states[deal_id] == "CLOSED", deal_id  # closed, explained by the activity feed
    exposure = exposure_json(exposure_at(ledger_engine, account))
    assert exposure["as_of"] == third.observed_at.isoformat()
    assert {p["deal_id"] for p in exposure["positions"]} == later
    recon = exposure["reconciliation"]
    assert recon["positions_checked"] == len(later) and recon["mismatches"] == []
