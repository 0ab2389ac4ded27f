"""How an intent is shown: `GET /intents/{id}`, the webhook's answers and `intents list`.

Measurements per intent: latency from receipt to acknowledgement and to the confirm, and the
slippage (the filled level against the intended one, positive when adverse to the sender).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

LIST_COLUMNS = (
    "id",
    "received_at",
    "account_id",
    "epic",
    "action",
    "mode",
    "state",
    "deal_reference",
    "ack_ms",
    "confirm_ms",
    "intended_level",
    "filled_level",
    "slippage",
    "reason",
)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _ms(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() * 1000, 3)


def intent_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "account": row.account_id,
        "key": row.idem_key,
        "state": row.state,
        "mode": row.mode,
        "action": row.action,
        "epic": row.epic,
        "reason": row.reason,
        "violations": list(row.violations or []),
        "order": row.order_request,
        "deal_reference": row.deal_reference,
        "deal_ids": list(row.deal_ids or []),
        "attempts": row.attempts,
        "steps": list(row.steps or []),
        "received_at": _iso(row.received_at),
        "acknowledged_at": _iso(row.acknowledged_at),
        "submitted_at": _iso(row.submitted_at),
        "confirmed_at": _iso(row.confirmed_at),
        "latency_ms": {
            "acknowledged": _ms(row.received_at, row.acknowledged_at),
            "confirmed": _ms(row.received_at, row.confirmed_at),
        },
        "intended_level": _text(row.intended_level),
        "filled_level": _text(row.filled_level),
        "slippage": _text(row.slippage),
        "payload": row.payload,
    }


def list_row(row: Any) -> dict[str, Any]:
    view = intent_view(row)
    return {
        "id": row.id,
        "received_at": view["received_at"],
        "account_id": row.account_id,
        "epic": row.epic,
        "action": row.action,
        "mode": row.mode,
        "state": row.state,
        "deal_reference": row.deal_reference,
        "ack_ms": view["latency_ms"]["acknowledged"],
        "confirm_ms": view["latency_ms"]["confirmed"],
        "intended_level": view["intended_level"],
        "filled_level": view["filled_level"],
        "slippage": view["slippage"],
        "reason": row.reason,
    }
