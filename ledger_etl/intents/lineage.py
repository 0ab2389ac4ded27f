"""An intent's whole lineage: intent -> dealReference -> order dealId -> position dealId ->
lifecycle transitions -> the ledger's transactions for those deals.

Read only through the other domains' public functions (the trading lifecycle report, the
change log, the ledger's reads), never their tables.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from ledger_etl.ledger.reads import entries_for_deals
from ledger_etl.trading import changelog
from ledger_etl.trading.query_lifecycle import UnknownDealError, lifecycle_report

from . import store
from .views import intent_view


def find_intent(engine: Engine, text: str) -> Any:
    """The intent named by `text` (its id, or `intent:<id>`), or None."""
    intent_id = text.removeprefix("intent:")
    if len(intent_id) != 36:
        return None
    return store.get(engine, intent_id)


def intent_lineage(engine: Engine, row: Any) -> dict[str, Any]:
    deal_ids = list(row.deal_ids or [])
    deals = []
    for deal_id in deal_ids:
        try:
            report = lifecycle_report(engine, row.account_id, deal_id)
        except UnknownDealError:
            report = None
        deals.append({"deal_id": deal_id, "lifecycle": report})
    with engine.connect() as conn:
        entries = changelog.entries_for(conn, row.account_id, [f"intent:{row.id}"])
        transactions = entries_for_deals(conn, row.account_id, deal_ids) if deal_ids else []
    return {
        "intent": intent_view(row),
        "intent_transitions": [
            {
                "seq": e.seq,
                "occurred_at": e.occurred_at.isoformat(),
                "from_state": e.from_state,
                "to_state": e.to_state,
                "entry_hash": e.entry_hash,
            }
            for e in entries
        ],
        "deals": deals,
        "transactions": [
            {**t, "posted_at": t["posted_at"].isoformat(), "amount": str(t["amount"])}
            for t in transactions
        ],
    }


def lineage_lines(lineage: dict[str, Any]) -> list[str]:
    """The lineage as text for `ledger-etl lifecycle`."""
    i = lineage["intent"]
    out = [
        f"intent {i['id']} ({i['action']} {i['epic']}, {i['mode']}): {i['state']}"
        + (f" - {i['reason']}" if i["reason"] else ""),
        f"  key {i['key']}, deal reference {i['deal_reference'] or '-'}",
    ]
    out += [f"  {s['at']} {s['state']}" for s in i["steps"]]
    for deal in lineage["deals"]:
        report = deal["lifecycle"]
        if report is None:
            out.append(f"deal {deal['deal_id']}: no lifecycle stored yet")
            continue
        out.append(
            f"deal {deal['deal_id']} ({report['kind']}, {report['epic']}): {report['state']}"
        )
        out += [
            f"  #{t['seq']} {t['occurred_at']} {t['event']}: {t['from_state']} -> "
            f"{t['to_state']} via {t['source']}"
            for t in report["transitions"]
        ]
    for tx in lineage["transactions"]:
        out.append(
            f"ledger {tx['posted_at']} {tx['transaction_type']} {tx['amount']} {tx['currency']} "
            f"(deal {tx['deal_id']}, {tx['reference']})"
        )
    return out
