"""Reconciliation picks a broker balance the ledger can reach, not merely the newest one."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import Engine, func, select

from ledger_etl.ledger import schema as s
from ledger_etl.statements.build import build_statement
from ledger_etl.statements.paths import parse_month
from ledger_etl.statements.query import read_statement_inputs
from tests.conftest import make_server
from tests.integration.ledger_helpers import account_ids, sync


def test_a_later_sync_of_another_account_does_not_unverify_this_one(
    ledger_engine: Engine, tmp_path: Path
) -> None:
    server = make_server(start=date(2025, 12, 1), rate_limit_per_second=0)
    try:
        first, second = account_ids(server)
        now = server.simulator.clock.now().replace(microsecond=0)
        sync(server, ledger_engine, datetime(2025, 12, 1, tzinfo=UTC), now, [first])
        server.simulator.clock.advance(3 * 3600)  # later, only the second account is synced
        sync(
            server,
            ledger_engine,
            datetime(2025, 12, 1, tzinfo=UTC),
            server.simulator.clock.now().replace(microsecond=0),
            [second],
        )
        with ledger_engine.connect() as conn:
            observations = conn.execute(
                select(func.count())
                .select_from(s.balance_observations)
                .where(s.balance_observations.c.account_id == first)
            ).scalar_one()
        assert observations == 2  # the second sync observed the first account's balance too
        statement = build_statement(
            read_statement_inputs(ledger_engine, first, parse_month("2025-12"))
        )
        assert statement.reconciliation.status == "RECONCILED", statement.reconciliation
        assert statement.reconciliation.observed_at is not None
        assert statement.reconciliation.observed_at < server.simulator.clock.now()
    finally:
        server.stop()
