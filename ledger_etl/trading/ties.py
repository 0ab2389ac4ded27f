"""Lifecycles against the ledger: every closed position's TRADE transactions must sum to its
realised P&L.

The realised P&L is known from the confirm of a close we made (`profit`); for a position the
broker closed (stop, limit, close-out) or that we saw close only in the activity feed, the
ledger's TRADE rows are the only figure, and the check asks that they exist once the ledger has
been synced past the close (`settled_before`). A partial close's profit is in the ledger only,
so for a position closed in parts the full-close profit is compared with the last TRADE row.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from ledger_etl.ledger.reads import entries_for_deals
from ledger_etl.ledger.schema import deal_lifecycles


def ties_out(
    conn: Connection, account_id: str, settled_before: datetime
) -> tuple[int, list[dict[str, Any]]]:
    """(closed positions checked, problems)."""
    c = deal_lifecycles.c
    rows = list(
        conn.execute(
            select(deal_lifecycles).where(
                c.account_id == account_id, c.kind == "position", c.state == "CLOSED"
            )
        )
    )
    entries = entries_for_deals(conn, account_id, [r.deal_id for r in rows])
    trades: dict[str, list[Decimal]] = {}
    for e in entries:
        if e["transaction_type"] == "TRADE":
            trades.setdefault(e["deal_id"], []).append(e["amount"])
    problems, checked = [], 0
    for row in rows:
        closes = (row.executed or {}).get("closes", [])
        closed_at = datetime.fromisoformat(closes[-1]["time"]) if closes else None
        if closed_at is None or closed_at >= settled_before:
            continue
        checked += 1
        found = trades.get(row.deal_id, [])
        if not found:
            problems.append({"deal_id": row.deal_id, "reason": "closed, but no TRADE transaction"})
            continue
        realised = next((c.get("realised") for c in reversed(closes) if c.get("realised")), None)
        if realised is not None and Decimal(realised) != found[-1]:
            problems.append(
                {
                    "deal_id": row.deal_id,
                    "reason": "TRADE differs from the confirm",
                    "ledger": str(found[-1]),
                    "confirm": realised,
                }
            )
    return checked, problems
