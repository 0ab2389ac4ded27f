"""Rebuild (`ledger.rebuild.renormalize`) takes an entry that no longer qualifies out of the
ledger: quarantined with its raw text, its last version kept in `entry_history`, never summed.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
from sqlalchemy import Engine, select

from ledger_etl.ledger import schema as s
from ledger_etl.ledger.chart import load_chart
from ledger_etl.ledger.ingest import finish_run, start_run
from ledger_etl.ledger.rebuild import raw_without_entry, renormalize
from ledger_etl.simulator import SimulatorServer
from ledger_etl.statements.build import build_statement
from ledger_etl.statements.model import Period
from ledger_etl.statements.query import read_statement_inputs
from tests.conftest import make_server
from tests.integration.ledger_helpers import ledger_amounts, sync, truth

START, END = datetime(2025, 12, 20, tzinfo=UTC), datetime(2025, 12, 22, tzinfo=UTC)
LATER = datetime(2025, 12, 23, tzinfo=UTC)
DECEMBER = Period(
    "2025-12", datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC),
    datetime(2025, 11, 1, tzinfo=UTC),
)  # fmt: skip


def _faults(server: SimulatorServer, profile: dict) -> None:
    headers = {"content-type": "application/json"}
    body = json.dumps(profile)
    httpx.put(server.url + "/_sim/faults", content=body, headers=headers, timeout=30)


def test_rebuild_takes_a_stored_foreign_currency_entry_out_of_the_ledger(
    ledger_engine: Engine,
) -> None:
    """An entry in EUR was stored while the account's currency was unknown (`/accounts` gave
    none); once the currency is known, the rebuild quarantines it and removes the entry."""
    server = make_server(start=date(2025, 12, 15), rate_limit_per_second=0)
    try:
        accounts = httpx.get(server.url + "/_sim/accounts", timeout=30).json()["accounts"]
        usd = next(a["accountId"] for a in accounts if a["currency"] == "USD")
        target = truth(server, "transactions", usd, START, END)[0]
        reference = target["reference"]
        _faults(server, {"corrupt_rows": [
            {"endpoint": "accounts", "kind": "override", "where": {"accountId": usd},
             "fields": {"currency": None}},
            {"endpoint": "transactions", "kind": "override", "where": {"reference": reference},
             "fields": {"currency": "EURd", "size": "1000.00"}},
        ]})  # fmt: skip
        sync(server, ledger_engine, START, END, [usd])
        assert ledger_amounts(ledger_engine, usd)[reference] == 1000  # stored: no currency known
        _faults(server, {})
        sync(server, ledger_engine, END, LATER, [usd])  # the account's currency is known now
    finally:
        server.stop()

    run_id = start_run(ledger_engine, "normalize", {})
    result = renormalize(ledger_engine, run_id, usd, START, END, load_chart())
    finish_run(ledger_engine, run_id, "succeeded", {})

    stored = ledger_amounts(ledger_engine, usd)
    assert reference not in stored
    assert result.quarantined == 1 and result.removed == 1
    q, h = s.quarantine, s.entry_history
    with ledger_engine.connect() as conn:
        [(raw, reason)] = conn.execute(select(q.c.raw, q.c.reason)).all()
        [previous] = conn.execute(select(h.c.previous).where(h.c.reference == reference)).all()
    assert reason.startswith("currency_mismatch") and reference in raw  # the evidence is kept
    assert Decimal(previous.previous["amount"]) == 1000  # its last version, in entry_history
    assert raw_without_entry(ledger_engine, usd, START, END) == 0
    statement = build_statement(read_statement_inputs(ledger_engine, usd, DECEMBER))
    assert statement.closing_balance == sum(stored.values())
    assert [f.reference for f in statement.foreign_currency_entries] == [reference]

    again = renormalize(ledger_engine, run_id, usd, START, END, load_chart())
    assert (again.removed, again.changed, again.digest) == (0, 0, result.digest)  # idempotent
