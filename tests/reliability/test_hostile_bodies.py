"""A hostile response body (not a row: the whole answer) costs its window, never the sync.

Each line of `BODIES` is a case: the simulator answers one history window with that body, over
real HTTP; the sync must not raise, that window must be a failed fetch with a reason (so it is a
gap a later sync fills), and every other window must be stored, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select

from ledger_etl.ledger import schema as s
from ledger_etl.ledger.coverage import stored_gaps
from tests.conftest import make_server
from tests.integration.ledger_helpers import account_ids, ledger_amounts, sync, truth_amounts

START, END = datetime(2025, 12, 20, tzinfo=UTC), datetime(2025, 12, 23, tzinfo=UTC)
BAD_DAY = "from=2025-12-21T00:00:00"

BODIES: dict[str, dict[str, Any]] = {
    # 100,000 nested `[`: a parser recursing per bracket overflows its stack.
    "nested_error_body": {"kind": "nested", "status": 500},
    "nested_client_error_body": {"kind": "nested", "status": 400},
    "nested_200_body": {"kind": "nested", "status": 200},
    "nested_a_million_deep": {"kind": "nested", "status": 200, "depth": 1_000_000},
    "html_200_body": {"kind": "html"},
    "json_cut_in_half": {"kind": "truncated_json"},
}


@pytest.mark.parametrize("name", list(BODIES))
def test_a_hostile_body_fails_its_window_and_the_rest_is_stored(
    name: str, ledger_engine: Engine
) -> None:
    rule = {**BODIES[name], "path": "^/history/transactions$", "query": BAD_DAY}
    server = make_server(
        start=date(2025, 12, 15), rate_limit_per_second=0, faults={"rules": [rule]}
    )
    try:
        account = account_ids(server)[0]
        report = sync(server, ledger_engine, START, END, [account])  # must not raise
        assert not report.ok
        with ledger_engine.connect() as conn:
            failed = conn.execute(
                select(s.fetch_log.c.window_start, s.fetch_log.c.error).where(
                    s.fetch_log.c.outcome == "failed"
                )
            ).all()
        assert failed and all(
            row.window_start >= datetime(2025, 12, 21, tzinfo=UTC) for row in failed
        ), failed
        assert all(row.error for row in failed)
        gaps = stored_gaps(ledger_engine, account, "transactions", START, END)
        assert [(g.start.day, g.end.day) for g in gaps] == [(21, 22)]
        for day_start, day_end in ((START, datetime(2025, 12, 21, tzinfo=UTC)),
                                   (datetime(2025, 12, 22, tzinfo=UTC), END)):  # fmt: skip
            assert ledger_amounts(ledger_engine, account, day_start, day_end) == truth_amounts(
                server, account, day_start, day_end
            )
    finally:
        server.stop()
