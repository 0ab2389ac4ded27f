"""Each day's net cash flow is drawn first; the day's rows are made to add up to it.

A balance is the sum of every transaction before an instant. Summing generated rows from the
first day costs minutes for a two-year world at thousands of rows a day (trade P&L follows the
price paths, so no row can be skipped), far too slow for `POST /session`. So the totals come
first: each account's net flow of each UTC day, `net(account, day)`, is drawn from one stream of
random numbers per account, day after day (microseconds a day, kept in memory, nothing on disk),
and a balance at midnight is a running sum of drawn numbers.

A day is cut into settlement slots (`slots_per_day`: one at a few rows a day, up to 96 of 15
minutes at thousands) and its net split over them exactly (`slot_nets`). The rows follow: each
slot's first row in time, an `ADJUSTMENT` ("Settlement adjustment") at the slot's first
millisecond (`settlement_row`), books the difference between the slot's drawn net and its other
rows, exactly, in Decimal. History pages, `/accounts`, the ground truth and a client's ledger
therefore agree to the cent: the settlement is a row like any other. A balance inside a slot is
the sum up to the slot's end less the slot's rows from the instant on (`World.balance_at`): those
come from the few items the plans say transact there (`events.plan_day`), built on their own;
the history is never generated for a balance.

The drawn net keeps an account's money sane: on the day it opens it is the first deposit; after
that it pulls the end-of-day balance back towards ten times the account's base amount, with noise
that grows with the trading volume, and never lets a day end below the base amount. A settlement
is of the size of a slot's trading result, never a balance's worth. No settlement falls in the
last second before a day (a sync's edge probe reads that second from the day before its range).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal, Inexact, Rounded, localcontext
from typing import TYPE_CHECKING

from ledger_etl.simulator.events import Row, money, seeded_rng

if TYPE_CHECKING:
    from ledger_etl.simulator.world import World

# Sums of cent amounts: far more digits than any balance needs, and a trap if one ever rounds.
SUM_CONTEXT = Context(prec=60, traps=[Inexact, Rounded])
SETTLEMENT_TYPE = "ADJUSTMENT"
SETTLEMENT_NOTE = "Settlement adjustment"
SETTLEMENT_ORDER = 1 << 40  # after every scripted row of its millisecond, before the book's
DAY_MS = 86_400_000
# Settlement slots a day may have: the fewest that keep about 100 rows an account in a slot.
_SLOT_LADDER = (1, 2, 4, 8, 12, 24, 48, 96)
_PULL = Decimal("0.05")  # the share of the gap to the target balance a day closes
_FIRST_DEPOSIT_MS = 8 * 3_600_000  # events._cash books the first deposit at 08:00 UTC
_CACHED_DAYS = 512


def slots_per_day(rows_per_day: float) -> int:
    return next((s for s in _SLOT_LADDER if s * 100 >= rows_per_day), _SLOT_LADDER[-1])


def settlement_row(account: int, at: datetime, amount: Decimal) -> Row:
    fields = {"transactionType": SETTLEMENT_TYPE, "note": SETTLEMENT_NOTE, "size": amount}
    return Row(at, account, "transaction", fields, order=SETTLEMENT_ORDER)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class DayTotals:
    """Per account, the drawn net of each UTC day from the world's start and of each of its
    settlement slots; `_running[a][i]` is the sum of account `a`'s days before `start + i`."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.start = world.config.start
        self.slots = slots_per_day(world.config.rows_per_day)
        self.slot_ms = DAY_MS // self.slots
        self._lock = threading.Lock()
        self._running: list[list[Decimal]] = [[Decimal(0)] for _ in world.accounts]
        # One stream of draws per account, day after day: `before` extends the running sums in
        # order under the lock, so day i always gets the i-th draw (no hashing per day).
        self._streams = [seeded_rng(world.seed, "net", i) for i in range(len(world.accounts))]
        self._slot_nets: OrderedDict[tuple[int, date], list[Decimal]] = OrderedDict()
        volume = world.positions_per_day + world.orders_per_day
        self._noise = float(min(volume, 10_000)) ** 0.5 * 0.02

    # -- slots ------------------------------------------------------------------------------------
    def slot_of(self, instant: datetime) -> int:
        since = instant - _midnight(instant.date())
        return min(int(since.total_seconds() * 1000) // self.slot_ms, self.slots - 1)

    def slot_start(self, day: date, slot: int) -> datetime:
        return _midnight(day) + timedelta(milliseconds=slot * self.slot_ms)

    def settlement_time(self, day: date, slot: int) -> datetime:
        """The slot's first millisecond: its settlement books there (after any other row of that
        millisecond), never in the last second before a day, which a sync's edge probe reads."""
        return self.slot_start(day, slot)

    def slot_end(self, day: date, slot: int) -> datetime:
        return _midnight(day) + timedelta(
            milliseconds=DAY_MS if slot == self.slots - 1 else (slot + 1) * self.slot_ms
        )

    # -- reading --------------------------------------------------------------------------------
    def before(self, account: int, day: date) -> Decimal:
        """The sum of the account's transactions on the days before `day` (from the start)."""
        if day <= self.start:
            return Decimal(0)
        index = (day - self.start).days
        running = self._running[account]
        if index >= len(running):
            with self._lock:
                while len(running) <= index:
                    drawn = self.start + timedelta(days=len(running) - 1)
                    net = self._draw(account, drawn, running[-1])
                    with localcontext(SUM_CONTEXT):
                        running.append(running[-1] + net)
        return running[index]

    def net(self, account: int, day: date) -> Decimal:
        """The sum of the account's transactions whose UTC time falls on `day`."""
        after, before = self.before(account, day + timedelta(days=1)), self.before(account, day)
        with localcontext(SUM_CONTEXT):
            return after - before

    def slot_nets(self, account: int, day: date) -> list[Decimal]:
        """The day's net split over its settlement slots, exactly (they add up to `net`)."""
        key = (account, day)
        with self._lock:
            found = self._slot_nets.get(key)
        if found is not None:
            return found
        net = self.net(account, day)
        acct = self.world.accounts[account]
        if self.slots == 1:
            parts = [net]
        elif day <= acct.opened:  # nothing, or the first deposit in its slot
            parts = [Decimal(0)] * self.slots
            parts[min(_FIRST_DEPOSIT_MS // self.slot_ms, self.slots - 1)] = net
        else:
            rng = seeded_rng(self.world.seed, "slots", account, day.isoformat())
            share = net / self.slots
            spread = acct.base_amount * Decimal(repr(round(self._noise, 4))) / self.slots
            parts = [
                money(share + spread * Decimal(repr(round(rng.gauss(0.0, 1.0), 4))))
                for _ in range(self.slots - 1)
            ]
            with localcontext(SUM_CONTEXT):
                parts.append(net - sum(parts, Decimal(0)))
        with self._lock:
            self._slot_nets[key] = parts
            while len(self._slot_nets) > _CACHED_DAYS:
                self._slot_nets.popitem(last=False)
        return parts

    def before_slot(self, account: int, day: date, slot: int) -> Decimal:
        """The sum of the account's transactions before the slot's start."""
        total, parts = self.before(account, day), self.slot_nets(account, day)[:slot]
        with localcontext(SUM_CONTEXT):
            return total + sum(parts, Decimal(0))

    def _draw(self, account: int, day: date, balance: Decimal) -> Decimal:
        acct = self.world.accounts[account]
        base = acct.base_amount
        if day < acct.opened:
            return Decimal(0)
        if day == acct.opened:
            return base * 10  # the first deposit (see events._cash)
        gauss = self._streams[account].gauss(0.0, 1.0)  # days are drawn in order, once each
        noise = money(base * Decimal(repr(round(gauss * self._noise, 4))))
        pull = money((base * 10 - balance) * _PULL)  # rounds to the cent: outside SUM_CONTEXT
        with localcontext(SUM_CONTEXT):
            net = pull + noise
            if balance + net < base:
                net = base - balance
        return net
