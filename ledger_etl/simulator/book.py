"""The deal book: what the dealing endpoints changed in a world that is otherwise a pure script.

The generated history (`events.generate_day`) is a function of the seed: every position and
working order there has its whole life written in advance. Dealing through the API changes that
future, so the book keeps, beside the script:

- the deals the API made (positions and working orders) and the ones it took over from the
  script (`adopt_*`): from the instant the API first touches a scripted deal, the script's rows
  for that deal at or after that instant are hidden (`cuts`) and the book's copy lives on;
- the rows those deals produce (activity and transactions), with references that sort between
  the scripted ones of the same day and never renumber them;
- the confirms, by deal reference.

Every view (positions, working orders, activity, transactions, balances, confirms) reads the
script through `visible` and adds the book, so the four views stay one world. Nothing here is
random: the same requests at the same simulated instants give the same deals and rows.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ledger_etl.simulator.catalog import instrument
from ledger_etl.simulator.events import (
    HORIZON_DAYS,
    OrderLife,
    PositionLife,
    Row,
    day_number,
    money,
)

if TYPE_CHECKING:
    from ledger_etl.simulator.world import World

FOREVER = datetime(9999, 12, 31, tzinfo=UTC)


@dataclass
class Held:
    """A deal the book owns, visible from `since` (its open, or the instant it was adopted)."""

    since: datetime
    life: Any  # PositionLife | OrderLife


class DealBook:
    def __init__(self, world: World) -> None:
        self.world = world
        self.lock = threading.RLock()
        self.positions: dict[str, Held] = {}
        self.orders: dict[str, Held] = {}
        self.cuts: dict[str, datetime] = {}
        self.suppressed: list[Row] = []  # scripted transactions hidden by a cut
        self.rows: dict[tuple[int, str, date], list[Row]] = {}
        self.confirms: dict[str, dict[str, Any]] = {}
        self.settled: datetime | None = None
        self.created_at: deque[float] = deque()  # create requests admitted, for the limits
        self._seq = 0

    # -- identities -----------------------------------------------------------------------------
    def next_deal_id(self, account: int, at: datetime) -> str:
        """Like scripted ids, but `54c5` in the third group keeps the two sets apart."""
        self._seq += 1
        day = day_number(at.date()) & 0xFFFF
        return f"{self.world.deal_prefix:08x}-{day:04x}-54c5-{account:04x}-{self._seq:012x}"

    def next_order_reference(self) -> str:
        """`o_` and a version-4 UUID, drawn from the seed and a counter (reproducible)."""
        self._seq += 1
        digest = hashlib.sha256(f"{self.world.seed}|order-ref|{self._seq}".encode()).digest()
        return "o_" + str(uuid.UUID(bytes=digest[:16], version=4))

    # -- the script, as the book leaves it ------------------------------------------------------
    def visible(self, row: Row) -> bool:
        cut = self.cuts.get(row.deal) if row.deal is not None else None
        return cut is None or row.ts < cut

    def scripted_alive(self, deal_id: str, now: datetime) -> bool:
        cut = self.cuts.get(deal_id)
        return cut is None or now < cut

    def cut(self, deal_id: str, at: datetime, source_day: date) -> None:
        """Hide the scripted rows of `deal_id` from `at` on (and of the position an order of the
        script would have opened), remembering hidden transactions for the balances."""
        events = self.world.day_events(source_day)
        hidden = {deal_id}
        hidden |= {p.deal_id for p in events.positions if p.working_order_id == deal_id}
        for ident in hidden:
            self.cuts.setdefault(ident, at)
        self.suppressed.extend(
            r for r in events.rows if r.deal in hidden and r.kind == "transaction" and r.ts >= at
        )

    def adopt_position(self, p: PositionLife, at: datetime) -> PositionLife:
        """The book's copy of a scripted position, as it stands at `at`."""
        held = self.positions.get(p.deal_id)
        if held is not None:
            return held.life  # type: ignore[no-any-return]
        self.cut(p.deal_id, at, source_day(p.deal_id, p.opened.date()))
        stop, profit = p.stops_at(at)
        copy = replace(
            p,
            size=p.size - sum((s for t, s in p.partial if t < at), Decimal(0)),
            partial=[],
            closed=FOREVER,
            stop_level=stop,
            profit_level=profit,
            amended=None,
            revisions=[],  # never share the scripted life's list
        )
        self.positions[p.deal_id] = Held(at, copy)
        return copy

    def adopt_order(self, o: OrderLife, at: datetime) -> OrderLife:
        held = self.orders.get(o.deal_id)
        if held is not None:
            return held.life  # type: ignore[no-any-return]
        self.cut(o.deal_id, at, source_day(o.deal_id, o.created.date()))
        copy = replace(o, ended=FOREVER, outcome="WORKING")
        self.orders[o.deal_id] = Held(at, copy)
        return copy

    # -- reading --------------------------------------------------------------------------------
    def open_positions(self, account: int, now: datetime) -> list[PositionLife]:
        with self.lock:
            return [
                h.life
                for h in self.positions.values()
                if h.life.account == account and h.since <= now < h.life.closed
            ]

    def open_orders(self, account: int, now: datetime) -> list[OrderLife]:
        with self.lock:
            return [
                h.life
                for h in self.orders.values()
                if h.life.account == account and h.since <= now < h.life.ended
            ]

    def rows_on(self, day: date, account: int, kind: str) -> list[Row]:
        with self.lock:
            return list(self.rows.get((account, kind, day), ()))

    def balance_delta(self, account: int, instant: datetime) -> Decimal:
        """What the book changes in the sum of transactions before `instant`."""
        with self.lock:
            added = sum(
                (
                    r.fields["size"]
                    for (a, kind, _), rows in self.rows.items()
                    if a == account and kind == "transaction"
                    for r in rows
                    if r.ts < instant
                ),
                Decimal(0),
            )
            removed = sum(
                (
                    r.fields["size"]
                    for r in self.suppressed
                    if r.account == account and r.ts < instant
                ),
                Decimal(0),
            )
        return added - removed

    def find(self, deal_reference: str) -> dict[str, Any] | None:
        with self.lock:
            return self.confirms.get(deal_reference)

    # -- writing rows ---------------------------------------------------------------------------
    def add_activity(
        self, at: datetime, life: PositionLife | OrderLife, source: str, act_type: str,
        status: str, **details: Any,
    ) -> None:  # fmt: skip
        acct = self.world.accounts[life.account]
        body: dict[str, Any] = {
            "dealReference": f"p_{life.deal_id}" if isinstance(life, PositionLife)
            else life.deal_reference,
            "marketName": instrument(life.epic).name, "currency": acct.wire_currency,
            "size": life.size, "direction": life.direction, "level": life.level,
            "guaranteedStop": life.guaranteed_stop,
        }  # fmt: skip
        body.update({k: v for k, v in details.items() if v is not None})
        fields = {"epic": life.epic, "dealId": life.deal_id, "source": source, "type": act_type,
                  "status": status, "details": body}  # fmt: skip
        self._add(Row(at, life.account, "activity", fields, deal=life.deal_id))

    def add_trade(self, at: datetime, p: PositionLife, amount: Decimal) -> None:
        fields = {
            "transactionType": "TRADE", "note": "Trade closed", "size": money(amount),
            "instrumentName": p.epic, "dealId": p.deal_id,
        }  # fmt: skip
        self._add(Row(at, p.account, "transaction", fields, deal=p.deal_id))

    def _add(self, row: Row) -> None:
        key = (row.account, row.kind, row.ts.date())
        bucket = self.rows.setdefault(key, [])
        row.order = (1 << 41) + len(bucket)  # after scripted rows (settlements too) of its ms
        if row.kind == "transaction":
            row.fields["reference"] = self._reference(row, bucket)
            row.fields["currency"] = self.world.accounts[row.account].wire_currency
            row.fields["status"] = "PROCESSED"
        bucket.append(row)

    def _reference(self, row: Row, bucket: Iterable[Row]) -> str:
        """Between the scripted references of the same day: the script numbers its rows
        `…{n:05d}000`, a book row after the n-th scripted row gets `…{n:05d}{k:03d}`, k ≥ 1."""
        day = row.ts.date()
        scripted = self.world.scripted_rows_on(day, row.account, "transaction")
        before = sum(1 for r in scripted if (r.ts, r.order) <= (row.ts, row.order))
        k = 1 + sum(1 for r in bucket if r.fields["reference"][7:12] == f"{before:05d}")
        return f"1{day_number(day):05d}{row.account}{before:05d}{k:03d}"


def source_day(deal_id: str, near: date) -> date:
    """The day whose events produced a scripted deal: its id carries the day number's low 16
    bits (see `events.DayBuilder.next_deal_id`), and it lies at most a horizon before `near`."""
    bits = int(deal_id.split("-")[1], 16)
    for back in range(HORIZON_DAYS + 1):
        candidate = near - timedelta(days=back)
        if day_number(candidate) & 0xFFFF == bits:
            return candidate
    return near
