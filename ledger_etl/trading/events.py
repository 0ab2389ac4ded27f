"""Lifecycle events from the three sources: snapshot changes, activity rows and confirms.

Each source reports what it can see best. Snapshots see a deal appear, change and disappear;
activity rows say *why* a deal disappeared (executed, cancelled, expired, closed) and catch deals
that lived and died between two polls; confirms answer our own requests (accepted or rejected,
with the dealId the broker gave). Partial closes are taken from the snapshot's shrinking size
only: an activity row gives the closed part, and adding it to a size the snapshot already
reduced would count the same close twice.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from ledger_etl.capital.models import Activity
from ledger_etl.capital.trading_models import Confirm

from .lifecycle import AMENDABLE, ORDER, POSITION, Event
from .snapshots import DealState, jsonable

_ORDER_ACTIVITY = {
    "CREATED": "accepted",
    "ACCEPTED": "accepted",
    "MODIFIED": "amended",
    "CANCELLED": "cancelled",
    "EXPIRED": "expired",
    "EXECUTED": "filled",
    "REJECTED": "rejected",
}
_POSITION_ACTIONS = {"POSITION_OPENED": "opened", "POSITION_CLOSED": "closed"}


def _key(*parts: Any) -> str:
    text = json.dumps(parts, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def snapshot_events(
    state: DealState, current: dict[str, Any] | None, observed_at: datetime
) -> list[Event]:
    """Events a deal's snapshot row implies, against the values the lifecycle holds."""
    values = jsonable(state.values)
    events = []
    if current is None or not current.get("seen"):
        name = "opened" if state.kind == POSITION else "accepted"
        created = state.values.get("created_at") or observed_at
        events.append(Event(state.deal_id, state.kind, name, created, "snapshot", values))
        # Known from our own request's confirm: what changed since is still a change.
        current = {k: v for k, v in (current or {}).items() if v is not None}
        if not current:
            return events
    if state.kind == POSITION and current.get("size") not in (None, values["size"]):
        events.append(
            Event(
                state.deal_id,
                POSITION,
                "partially_closed",
                observed_at,
                "snapshot",
                {"size": values["size"], "previous_size": current.get("size")},
            )
        )
    changed = {
        k: values.get(k)
        for k in AMENDABLE
        if k in values and k in current and current.get(k) != values[k]
    }
    if changed:
        before = {k: current.get(k) for k in changed}
        events.append(
            Event(
                state.deal_id,
                state.kind,
                "amended",
                observed_at,
                "snapshot",
                {**changed, "previous": before},
            )
        )
    return events


def fill_from_position(state: DealState, observed_at: datetime) -> Event | None:
    """A position opened by a working order (its `workingOrderId`) fills that order."""
    order_id = state.values.get("working_order_id")
    if not order_id or order_id == state.deal_id:
        return None
    values = jsonable(state.values)
    created = state.values.get("created_at") or observed_at
    return Event(
        order_id,
        ORDER,
        "filled",
        created,
        "snapshot",
        {"level": values["level"], "size": values["size"], "position_id": state.deal_id},
    )


def activity_events(row: Activity) -> list[Event]:
    if not row.deal_id:
        return []
    details = row.details
    key = _key("activity", row.content_key())
    values: dict[str, Any] = {}
    if details is not None:
        values = jsonable(
            {"level": details.level, "size": details.size, "direction": details.direction}
        )
        values = {k: v for k, v in values.items() if v is not None}
    if row.type == "WORKING_ORDER" and row.status in _ORDER_ACTIVITY:
        name = _ORDER_ACTIVITY[row.status]
        if name == "amended":
            values = {k: v for k, v in values.items() if k == "level"}
        if name == "filled":
            values.pop("direction", None)
        return [
            Event(
                row.deal_id,
                ORDER,
                name,
                row.date_utc,
                "activity",
                {"epic": row.epic, **values},
                key,
            )
        ]
    if row.type == "POSITION" and row.status == "ACCEPTED" and details is not None:
        for action in details.actions:
            name = _POSITION_ACTIONS.get(action.action_type or "")
            if name is not None:
                return [
                    Event(
                        row.deal_id,
                        POSITION,
                        name,
                        row.date_utc,
                        "activity",
                        {"epic": row.epic, **values},
                        key,
                    )
                ]
    if row.type == "EDIT_STOP_AND_LIMIT" and row.status == "MODIFIED" and details is not None:
        edit = jsonable({"stop_level": details.stop_level, "profit_level": details.profit_level})
        return [Event(row.deal_id, POSITION, "amended", row.date_utc, "activity", edit, key)]
    return []


def confirm_events(confirm: Confirm, kind: str, pending_id: str) -> list[Event]:
    """Events of the confirm of one of our requests. `pending_id` is the key the request was
    recorded under (its dealReference) until the broker names the deal."""
    when = confirm.date or datetime.fromisoformat("1970-01-01T00:00:00+00:00")
    key = _key("confirm", confirm.deal_reference, confirm.status, confirm.deal_status)
    base = jsonable(
        {
            "level": confirm.level,
            "size": confirm.size,
            "direction": confirm.direction,
            "epic": confirm.epic,
            "deal_reference": confirm.deal_reference,
        }
    )
    base = {k: v for k, v in base.items() if v is not None}
    if not confirm.accepted:
        reason = confirm.reject_reason or confirm.reason
        return [
            Event(pending_id, kind, "rejected", when, "confirm", {**base, "reason": reason}, key)
        ]
    events = []
    for affected in confirm.affected_deals:
        status = affected.status or ""
        if status == "OPENED":
            name = "opened" if kind == POSITION else "accepted"
            events.append(Event(affected.deal_id, kind, name, when, "confirm", base, key))
        elif status == "DELETED":
            events.append(Event(affected.deal_id, ORDER, "cancelled", when, "confirm", base, key))
        elif status == "FULLY_CLOSED":
            profit = confirm.extra_fields.get("profit")
            closed = {
                **base,
                **({"realised": jsonable({"p": profit})["p"]} if profit is not None else {}),
            }
            events.append(Event(affected.deal_id, POSITION, "closed", when, "confirm", closed, key))
        elif status == "AMENDED":
            edit = jsonable(
                {"stop_level": confirm.stop_level, "profit_level": confirm.profit_level}
            )
            edit = {k: v for k, v in edit.items() if v is not None}
            events.append(Event(affected.deal_id, kind, "amended", when, "confirm", edit, key))
    if not events and not confirm.affected_deals and confirm.deal_id:
        name = "opened" if kind == POSITION else "accepted"
        events.append(Event(confirm.deal_id, kind, name, when, "confirm", base, key))
    return events
