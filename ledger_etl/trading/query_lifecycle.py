"""One deal's story: its lifecycle, its change-log entries, and the ledger's transactions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from ledger_etl.errors import InputError
from ledger_etl.ledger.reads import entries_for_deals
from ledger_etl.ledger.schema import deal_lifecycles

from . import changelog


class UnknownDealError(InputError):
    """A dealId (or dealReference) with no lifecycle in the store."""


def lifecycle_report(engine: Engine, account_id: str, deal_id: str) -> dict[str, Any]:
    c = deal_lifecycles.c
    with engine.connect() as conn:
        row = conn.execute(
            select(deal_lifecycles).where(c.account_id == account_id, c.deal_id == deal_id)
        ).first()
        if row is None:
            raise UnknownDealError(f"no lifecycle for deal {deal_id} in account {account_id}")
        reference = (row.current or {}).get("deal_reference")
        ids = [deal_id] + ([reference] if reference else [])
        entries = changelog.entries_for(conn, account_id, ids)
        transactions = entries_for_deals(conn, account_id, ids)
    return {
        "account_id": account_id,
        "deal_id": deal_id,
        "deal_reference": reference,
        "kind": row.kind,
        "epic": row.epic,
        "state": row.state,
        "intended": row.intended,
        "executed": row.executed,
        "flags": row.flags,
        "transitions": [
            {
                "seq": e.seq,
                "occurred_at": e.occurred_at.isoformat(),
                "event": e.event,
                "from_state": e.from_state,
                "to_state": e.to_state,
                "source": e.source,
                "flag": e.flag,
                "detail": e.detail,
                "entry_hash": e.entry_hash,
            }
            for e in entries
        ],
        "transactions": [
            {**t, "posted_at": t["posted_at"].isoformat(), "amount": str(t["amount"])}
            for t in transactions
        ],
    }
