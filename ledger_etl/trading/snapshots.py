"""What a position or working order *is*, for change detection: its own fields, hashed.

Market data beside a row (bid, offer, the broker's running `upl`) moves every second and is not
part of the content: it goes to quotes and to the poll record. So an account whose deals did
not change writes no snapshot row, however much the prices moved.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger_etl.capital.trading_models import OpenPosition, WorkingOrder


@dataclass(frozen=True)
class DealState:
    """One deal as seen by one poll: the content columns, their hash and the raw row text."""

    deal_id: str
    kind: str  # position | order
    values: dict[str, Any]
    raw: str
    upl: Decimal | None = None

    @cached_property
    def content_sha256(self) -> str:
        return content_hash(self.values)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return "0" if text in ("0", "-0") else text
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def content_hash(values: dict[str, Any]) -> str:
    text = json.dumps({k: _plain(v) for k, v in sorted(values.items())}, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def position_state(row: OpenPosition, raw: str) -> DealState:
    p = row.position
    values = {
        "epic": row.market.epic,
        "direction": p.direction,
        "size": p.size,
        "level": p.level,
        "stop_level": p.stop_level,
        "stop_distance": p.stop_distance,
        "profit_level": p.profit_level,
        "profit_distance": p.profit_distance,
        "guaranteed_stop": p.guaranteed_stop,
        "trailing_stop": p.trailing_stop,
        "deal_reference": p.deal_reference,
        "working_order_id": p.working_order_id,
        "created_at": p.created_date_utc,
    }
    return DealState(p.deal_id, "position", values, raw, p.upl)


def order_state(row: WorkingOrder, raw: str) -> DealState:
    o = row.working_order_data
    values = {
        "epic": o.epic,
        "direction": o.direction,
        "size": o.order_size,
        "level": o.order_level,
        "stop_level": o.stop_level,
        "stop_distance": o.stop_distance,
        "profit_level": o.profit_level,
        "profit_distance": o.profit_distance,
        "guaranteed_stop": o.guaranteed_stop,
        "trailing_stop": o.trailing_stop,
        "deal_reference": None,
        "working_order_id": None,
        "created_at": o.created_date_utc,
        "order_type": o.order_type,
        "time_in_force": o.time_in_force,
        "good_till": o.good_till_date_utc,
    }
    return DealState(o.deal_id, "order", values, raw)


def jsonable(values: dict[str, Any]) -> dict[str, Any]:
    """The values with exact decimal strings and ISO instants, for JSON columns and files."""
    return {k: _plain(v) for k, v in values.items()}
