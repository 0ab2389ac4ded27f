"""Public reads of the ledger for other domains (they never query its tables directly)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from ledger_etl.ledger.schema import ledger_entries


def entries_for_deals(
    conn: Connection, account_id: str, deal_ids: list[str]
) -> list[dict[str, Any]]:
    """Ledger entries (transactions) carrying one of `deal_ids`, oldest first."""
    c = ledger_entries.c
    found: list[dict[str, Any]] = []
    for start in range(0, len(deal_ids), 500):
        rows = conn.execute(
            select(c.reference, c.posted_at, c.transaction_type, c.amount, c.currency, c.deal_id)
            .where(c.account_id == account_id, c.deal_id.in_(deal_ids[start : start + 500]))
            .order_by(c.posted_at, c.reference)
        )
        found += [r._asdict() for r in rows]
    return found


def trade_totals(conn: Connection, account_id: str, deal_ids: list[str]) -> dict[str, Decimal]:
    """deal_id -> the sum of its TRADE entries (its realised P&L in the ledger)."""
    totals: dict[str, Decimal] = {}
    for row in entries_for_deals(conn, account_id, deal_ids):
        if row["transaction_type"] == "TRADE":
            totals[row["deal_id"]] = totals.get(row["deal_id"], Decimal(0)) + row["amount"]
    return totals
