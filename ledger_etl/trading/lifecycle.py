"""Order and position lifecycles: a fold over events, with the transition table as data.

Orders:    PENDING -> ACCEPTED | REJECTED -> (AMENDED)* -> FILLED | CANCELLED | EXPIRED
Positions: (PENDING ->) OPEN -> (AMENDED | PARTIALLY_CLOSED)* -> CLOSED

Real venues need a few more edges, kept explicit here: an order first seen on the venue starts
at ACCEPTED (we never saw it pending); a fill that raced a cancel or an expiry turns CANCELLED
or EXPIRED into FILLED; a deal that vanished (gone from the snapshot with nothing to explain it
within the grace period) can still be explained later. An event the table does not allow is
recorded as an `invalid_transition` and leaves the state as it was: never applied silently.

The same fact is often observed twice (a fill in the activity feed *and* as a new position in
the snapshot; a close in the confirm *and* in the activity). Events therefore carry resulting
values, not deltas, and a repeat observation of a state already reached is ignored, so nothing
is double-counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

ORDER, POSITION = "order", "position"
ORDER_STATES = (
    "PENDING",
    "ACCEPTED",
    "REJECTED",
    "AMENDED",
    "FILLED",
    "CANCELLED",
    "EXPIRED",
    "VANISHED",
)
POSITION_STATES = (
    "PENDING",
    "REJECTED",
    "OPEN",
    "AMENDED",
    "PARTIALLY_CLOSED",
    "CLOSED",
    "VANISHED",
)
TERMINAL = frozenset({"REJECTED", "FILLED", "CANCELLED", "EXPIRED", "CLOSED"})
AMENDABLE = (
    "level",
    "stop_level",
    "stop_distance",
    "profit_level",
    "profit_distance",
    "guaranteed_stop",
    "trailing_stop",
    "good_till",
)
DEFAULT_GRACE = timedelta(minutes=5)


def _table() -> dict[str, dict[tuple[str | None, str], str]]:
    order: dict[tuple[str | None, str], str] = {
        (None, "submitted"): "PENDING",
        ("PENDING", "accepted"): "ACCEPTED",
        ("PENDING", "rejected"): "REJECTED",
        (None, "accepted"): "ACCEPTED",  # first seen on the venue
        (None, "rejected"): "REJECTED",
        ("CANCELLED", "filled"): "FILLED",  # the fill raced the cancel
        ("EXPIRED", "filled"): "FILLED",
        # An order that lived and ended between two polls is learned from its end alone.
        (None, "filled"): "FILLED",
        (None, "cancelled"): "CANCELLED",
        (None, "expired"): "EXPIRED",
    }
    for live in ("ACCEPTED", "AMENDED"):
        order[(live, "amended")] = "AMENDED"
        order[(live, "filled")] = "FILLED"
        order[(live, "cancelled")] = "CANCELLED"
        order[(live, "expired")] = "EXPIRED"
        order[(live, "vanished")] = "VANISHED"
    for late in ("filled", "cancelled", "expired"):
        order[("VANISHED", late)] = late.upper()
    position: dict[tuple[str | None, str], str] = {
        (None, "submitted"): "PENDING",
        ("PENDING", "opened"): "OPEN",
        ("PENDING", "rejected"): "REJECTED",
        (None, "opened"): "OPEN",
        (None, "rejected"): "REJECTED",
        ("VANISHED", "closed"): "CLOSED",
    }
    for live in ("OPEN", "AMENDED", "PARTIALLY_CLOSED"):
        position[(live, "amended")] = "AMENDED"
        position[(live, "partially_closed")] = "PARTIALLY_CLOSED"
        position[(live, "closed")] = "CLOSED"
        position[(live, "vanished")] = "VANISHED"
    return {ORDER: order, POSITION: position}


TRANSITIONS = _table()
# The state each event leads to, to recognise a repeated observation of a state reached already.
_TARGET = {
    "submitted": "PENDING",
    "accepted": "ACCEPTED",
    "rejected": "REJECTED",
    "filled": "FILLED",
    "cancelled": "CANCELLED",
    "expired": "EXPIRED",
    "opened": "OPEN",
    "closed": "CLOSED",
    "vanished": "VANISHED",
}
_EARLY = frozenset({"submitted", "accepted", "opened"})
_BOOKKEEPING = frozenset({"previous", "previous_size", "seen", "reason"})


@dataclass(frozen=True)
class Event:
    deal_id: str
    kind: str
    name: str
    occurred_at: datetime
    source: str  # snapshot | activity | confirm | submission | grace
    values: dict[str, Any] = field(default_factory=dict)  # resulting values, JSON-ready
    key: str = ""  # identity of the observation (an activity row, a confirm...), for replays


@dataclass
class Deal:
    account_id: str
    deal_id: str
    kind: str
    state: str | None = None
    epic: str | None = None
    intended: dict[str, Any] = field(default_factory=dict)
    executed: dict[str, Any] = field(default_factory=dict)
    current: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    gone_since: datetime | None = None
    event_keys: list[str] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


@dataclass(frozen=True)
class Transition:
    """One change-log entry to append."""

    deal_id: str
    kind: str
    event: str
    from_state: str | None
    to_state: str | None
    occurred_at: datetime
    source: str
    detail: dict[str, Any]
    flag: str | None = None


def _repeat(deal: Deal, event: Event) -> bool:
    """True when the event observes a state the deal already reached (ignored, not flagged)."""
    if event.name in _EARLY and deal.state not in (None, "PENDING"):
        return True
    if event.name == "amended":
        changed = {k: v for k, v in event.values.items() if k in AMENDABLE}
        return not changed or all(deal.current.get(k) == v for k, v in changed.items())
    if event.name == "partially_closed":
        return deal.current.get("size") == event.values.get("size")
    return _TARGET.get(event.name) == deal.state


def apply(deal: Deal, event: Event) -> Transition | None:
    """Apply one event to `deal` in place; the change-log entry, or None for a repeat."""
    if event.key and event.key in deal.event_keys:
        return None
    if event.key:
        deal.event_keys.append(event.key)
    if (
        event.name != "vanished"
        and deal.gone_since is not None
        and event.name in ("amended", "partially_closed")
    ):
        deal.gone_since = None  # seen changed: it is still there
    if _repeat(deal, event):
        return None
    target = TRANSITIONS[deal.kind].get((deal.state, event.name))
    before = deal.state
    if target is None:
        deal.flags.append(f"invalid_transition:{before}->{event.name}")
        return Transition(
            deal.deal_id,
            deal.kind,
            event.name,
            before,
            before,
            event.occurred_at,
            event.source,
            event.values,
            "invalid_transition",
        )
    deal.state = target
    _record_values(deal, event)
    flag = None
    if event.name == "vanished":
        flag = "vanished"
        deal.flags.append("vanished")
    return Transition(
        deal.deal_id,
        deal.kind,
        event.name,
        before,
        target,
        event.occurred_at,
        event.source,
        event.values,
        flag,
    )


def _record_values(deal: Deal, event: Event) -> None:
    values = event.values
    deal.epic = deal.epic or values.get("epic")
    if event.name in ("submitted", "accepted", "opened") and not deal.intended:
        deal.intended = {k: v for k, v in values.items() if k not in _BOOKKEEPING}
    if event.name == "opened":
        deal.executed.setdefault("level", values.get("level"))
        deal.executed.setdefault("size", values.get("size"))
        deal.executed.setdefault("time", values.get("created_at") or event.occurred_at.isoformat())
    if event.name == "filled":
        deal.executed.update(
            {k: values[k] for k in ("level", "size", "position_id") if values.get(k) is not None}
        )
        deal.executed.setdefault("time", event.occurred_at.isoformat())
    if event.name in ("partially_closed", "closed"):
        closes = deal.executed.setdefault("closes", [])
        closes.append({"time": event.occurred_at.isoformat(), **values})
    if event.name in ("closed", "filled", "cancelled", "expired", "rejected"):
        deal.gone_since = None
    deal.current.update({k: v for k, v in values.items() if k not in _BOOKKEEPING})


def check_vanished(deal: Deal, now: datetime, grace: timedelta = DEFAULT_GRACE) -> Event | None:
    """The `vanished` event of a deal gone from the snapshot for `grace` with nothing to
    explain it (no fill, cancel, expiry or close), or None."""
    if deal.gone_since is None or deal.terminal or deal.state == "VANISHED":
        return None
    if now - deal.gone_since < grace:
        return None
    detail = {"gone_since": deal.gone_since.isoformat(), "grace_s": int(grace.total_seconds())}
    return Event(deal.deal_id, deal.kind, "vanished", now, "grace", detail)


def rekeyed(deal: Deal, deal_id: str) -> Deal:
    """The pending deal known by its reference, now known by the broker's dealId."""
    return replace(deal, deal_id=deal_id)
