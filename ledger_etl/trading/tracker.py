"""Lifecycles in the database: load the deals an event touches, fold, store, log.

`LifecycleTracker` is used inside one transaction per poll (or per submission/confirm): it
loads each deal once, applies events in time order, and on `flush` writes the changed deals and
appends their transitions to the hash-chained change log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from ledger_etl.ledger.schema import deal_lifecycles

from . import changelog
from .lifecycle import (
    DEFAULT_GRACE,
    ORDER,
    POSITION,
    Deal,
    Event,
    Transition,
    apply,
    check_vanished,
)
from .snapshots import DealState, jsonable


def _fingerprint(deal: Deal) -> str:
    return json.dumps(
        [
            deal.kind,
            deal.state,
            deal.epic,
            deal.intended,
            deal.executed,
            deal.current,
            deal.flags,
            deal.gone_since,
            deal.event_keys[-200:],
        ],
        default=str,
        sort_keys=True,
    )


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class LifecycleTracker:
    def __init__(self, conn: Connection, account_id: str) -> None:
        self.conn = conn
        self.account_id = account_id
        self.deals: dict[str, Deal] = {}
        self._stored: set[str] = set()
        self._removed: set[str] = set()
        self._absent: set[str] = set()  # known not to be stored yet
        self._loaded: dict[str, str] = {}  # deal_id -> fingerprint as read
        self.transitions: list[Transition] = []

    def deal(self, deal_id: str, kind: str) -> Deal:
        if deal_id not in self.deals and deal_id in self._absent:
            self.deals[deal_id] = Deal(self.account_id, deal_id, kind)
        if deal_id not in self.deals:
            row = self.conn.execute(
                select(deal_lifecycles).where(
                    deal_lifecycles.c.account_id == self.account_id,
                    deal_lifecycles.c.deal_id == deal_id,
                )
            ).first()
            if row is None:
                self.deals[deal_id] = Deal(self.account_id, deal_id, kind)
            else:
                self._stored.add(deal_id)
                self.deals[deal_id] = Deal(
                    self.account_id,
                    deal_id,
                    row.kind,
                    row.state,
                    row.epic,
                    dict(row.intended),
                    dict(row.executed),
                    dict(row.current),
                    list(row.flags),
                    row.gone_since,
                    list(row.event_keys),
                )
                self._loaded[deal_id] = _fingerprint(self.deals[deal_id])
        return self.deals[deal_id]

    def preload(self, deal_ids: Iterable[str]) -> None:
        """Load many deals in a few queries instead of one query each."""
        wanted = sorted(d for d in deal_ids if d not in self.deals)
        c = deal_lifecycles.c
        for start in range(0, len(wanted), 500):
            rows = self.conn.execute(
                select(deal_lifecycles).where(
                    c.account_id == self.account_id, c.deal_id.in_(wanted[start : start + 500])
                )
            )
            for row in rows:
                self._stored.add(row.deal_id)
                self.deals[row.deal_id] = Deal(
                    self.account_id,
                    row.deal_id,
                    row.kind,
                    row.state,
                    row.epic,
                    dict(row.intended),
                    dict(row.executed),
                    dict(row.current),
                    list(row.flags),
                    row.gone_since,
                    list(row.event_keys),
                )
                self._loaded[row.deal_id] = _fingerprint(self.deals[row.deal_id])
        self._absent.update(d for d in wanted if d not in self.deals)

    def open_deals(self, kind: str) -> list[str]:
        """Deals of `kind` not yet in a terminal state, as stored."""
        c = deal_lifecycles.c
        rows = self.conn.execute(
            select(c.deal_id).where(
                c.account_id == self.account_id,
                c.kind == kind,
                c.state.in_(("ACCEPTED", "AMENDED", "OPEN", "PARTIALLY_CLOSED")),
            )
        )
        return [r.deal_id for r in rows]

    def apply(self, events: Iterable[Event]) -> None:
        order = {"submission": 0, "confirm": 1, "activity": 2, "snapshot": 3, "grace": 4}
        for event in sorted(events, key=lambda e: (e.occurred_at, order.get(e.source, 9))):
            transition = apply(self.deal(event.deal_id, event.kind), event)
            if transition is not None:
                self.transitions.append(transition)

    def adopt(self, pending_id: str, deal_id: str) -> None:
        """The deal recorded under its reference gets the broker's dealId (after a confirm)."""
        if pending_id == deal_id:
            return
        pending = self.deal(pending_id, POSITION)
        if pending.state is None:
            return
        target = self.deal(deal_id, pending.kind)
        if target.state is None:
            target.state, target.intended = pending.state, dict(pending.intended)
            target.current = {**pending.current, "deal_reference": pending_id}
            target.event_keys = list(pending.event_keys)
            target.epic = pending.epic
        self.deals.pop(pending_id)
        self._removed.add(pending_id)

    def observe(
        self,
        kind: str,
        states: list[DealState],
        observed_at: datetime,
        grace: timedelta = DEFAULT_GRACE,
    ) -> None:
        """Events from one complete snapshot of `kind`: appearances, changes, disappearances."""
        from .events import fill_from_position, snapshot_events

        seen = {s.deal_id for s in states}
        self.preload(seen)
        events: list[Event] = []
        first_seen = []
        for state in states:
            deal = self.deal(state.deal_id, kind)
            deal.gone_since = None
            if not deal.current.get("seen"):
                first_seen.append(state)
            events += snapshot_events(state, deal.current or None, observed_at)
        if kind == POSITION:
            fills = [f for s in first_seen if (f := fill_from_position(s, observed_at))]
            self.preload({f.deal_id for f in fills})
            for fill in fills:
                self.deal(fill.deal_id, ORDER)
            events += fills
        self.apply(events)
        for state in states:  # the snapshot is the truth about the deal's values now
            deal = self.deals[state.deal_id]
            deal.current.update(jsonable(state.values))
            deal.current["seen"] = True
        for deal_id in self.open_deals(kind):
            if deal_id in seen:
                continue
            deal = self.deal(deal_id, kind)
            if not deal.terminal and deal.gone_since is None:
                deal.gone_since = observed_at
        vanished = [
            e
            for d in list(self.deals.values())
            if d.kind == kind
            if (e := check_vanished(d, observed_at, grace)) is not None
        ]
        self.apply(vanished)

    def flush(self, now: datetime) -> int:
        for deal_id in self._removed:
            self.conn.execute(
                delete(deal_lifecycles).where(
                    deal_lifecycles.c.account_id == self.account_id,
                    deal_lifecycles.c.deal_id == deal_id,
                )
            )
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for deal in self.deals.values():
            if deal.state is None and not deal.flags:
                continue
            if self._loaded.get(deal.deal_id) == _fingerprint(deal):
                continue  # unchanged since it was read: nothing to write
            row = {
                "kind": deal.kind,
                "state": deal.state or "UNKNOWN",
                "epic": deal.epic,
                "intended": _json(deal.intended),
                "executed": _json(deal.executed),
                "current": _json(deal.current),
                "flags": deal.flags,
                "gone_since": deal.gone_since,
                "event_keys": deal.event_keys[-200:],
                "updated_at": now,
            }
            if deal.deal_id in self._stored:
                updates.append({"b_deal_id": deal.deal_id, **row})
            else:
                inserts.append({"account_id": self.account_id, "deal_id": deal.deal_id, **row})
                self._stored.add(deal.deal_id)
        if inserts:
            self.conn.execute(insert(deal_lifecycles), inserts)
        if updates:
            c = deal_lifecycles.c
            statement = (
                update(deal_lifecycles)
                .where(c.account_id == self.account_id, c.deal_id == bindparam("b_deal_id"))
                .values({name: bindparam(name) for name in updates[0] if name != "b_deal_id"})
            )
            self.conn.execute(statement, updates)
        written = changelog.append(self.conn, self.account_id, self.transitions, now)
        self.transitions = []
        return written


def submission_event(reference: str, kind: str, intended: dict[str, Any], at: datetime) -> Event:
    """Our own request, before the broker answers: PENDING under its dealReference."""
    return Event(
        reference, kind, "submitted", at, "submission", jsonable(intended), f"submitted:{reference}"
    )
