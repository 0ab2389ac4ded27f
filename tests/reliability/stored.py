"""What a ledger database holds, in a backend-neutral form: two backends must agree on it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from ledger_etl.ledger import schema as s

# Run ids, run keys and fetch times differ between any two syncs; everything else must be equal.
_SKIPPED = {
    "first_run_id",
    "last_run_id",
    "first_run_key",
    "last_run_key",
    "id",
    "window_start",
    "window_end",
}


def _rows(engine: Engine, table: Any, account: str | None) -> list[tuple[Any, ...]]:
    columns = [c for c in table.c if c.name not in _SKIPPED]
    query = select(*columns)
    if account is not None:
        query = query.where(table.c.account_id == account)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return sorted((tuple(row) for row in rows), key=repr)


def stored_state(engine: Engine, account: str | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Ledger entries, activities, raw rows and quarantine rows (of one account, or all),
    sorted, as Python values."""
    return {
        table.name: _rows(engine, table, account)
        for table in (
            s.ledger_entries, s.activities, s.raw_transactions, s.raw_activities, s.quarantine,
        )
    }  # fmt: skip
