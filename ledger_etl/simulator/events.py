"""The event model: everything that happens in the simulated accounts, one UTC day at a time.

`generate_day(world, day)` returns every row caused by the events that *start* on `day`: a position
opened that day brings its later edits, partial closes, swaps and closing trade with it, even when
they fall on following days (never more than `HORIZON_DAYS` later). A day's rows are therefore a
pure function of (seed, day): the same seed gives the same history whenever the simulator starts,
and any day can be produced without the days before it.

A day is planned before it is built: `plan_day` draws, per account, when each item (a position,
a working order and the position it may open, a rejected attempt) starts, ends and is partly
closed, without reading a price. Each item is then built from a seed of its own (`build_item`),
its ids and row order from (day, account, item index), so one item built alone is exactly that
item of the whole day: an open position or a balance inside a day needs only the items the plan
says touch it (`World.open_positions`, `World.balance_at`), and a day's money totals are drawn
first (`simulator.balances`).

Activity rows and transactions come from the same events: a closing activity row and its TRADE
transaction share the dealId, a swap charge has a SWAP activity row and a SWAP transaction, and so
on. Deposits, withdrawals, transfers and fees exist only as transactions.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from ledger_etl.simulator.catalog import instrument

if TYPE_CHECKING:
    from ledger_etl.simulator.world import World

HORIZON_DAYS = 8  # no event's rows reach further than this many days after its start
CENT = Decimal("0.01")
EPOCH_DAY = date(2000, 1, 1)
ROWS_PER_ITEM = 64  # rows of one planned item at most (a position held a week has ~22)
IDS_PER_ITEM = 4  # deal ids: 0 the position, 1 the order, 2 a rejected attempt; 3 order refs


@dataclass(frozen=True)
class Tradable:
    """How the world trades an instrument: sizes, P&L per point, financing."""

    epic: str
    min_size: Decimal
    max_size: Decimal
    size_step: Decimal
    point_value: Decimal  # P&L in instrument currency per 1.0 price move per 1 unit of size
    swap_rate: Decimal  # yearly financing rate on the notional
    commission_rate: Decimal  # per-trade commission on the notional (0 for spread-only markets)


TRADABLES: tuple[Tradable, ...] = (
    Tradable(
        "GOLD",
        Decimal("0.1"),
        Decimal("5"),
        Decimal("0.1"),
        Decimal("1"),
        Decimal("0.065"),
        Decimal("0"),
    ),
    Tradable(
        "SILVER",
        Decimal("1"),
        Decimal("200"),
        Decimal("1"),
        Decimal("1"),
        Decimal("0.065"),
        Decimal("0"),
    ),
    Tradable(
        "OIL_CRUDE",
        Decimal("1"),
        Decimal("50"),
        Decimal("1"),
        Decimal("1"),
        Decimal("0.07"),
        Decimal("0"),
    ),
    Tradable(
        "NATURALGAS",
        Decimal("10"),
        Decimal("500"),
        Decimal("10"),
        Decimal("1"),
        Decimal("0.07"),
        Decimal("0"),
    ),
    Tradable(
        "EURUSD",
        Decimal("1000"),
        Decimal("50000"),
        Decimal("1000"),
        Decimal("1"),
        Decimal("0.03"),
        Decimal("0"),
    ),
    Tradable(
        "GBPUSD",
        Decimal("1000"),
        Decimal("50000"),
        Decimal("1000"),
        Decimal("1"),
        Decimal("0.03"),
        Decimal("0"),
    ),
    Tradable(
        "US500",
        Decimal("0.1"),
        Decimal("3"),
        Decimal("0.1"),
        Decimal("1"),
        Decimal("0.06"),
        Decimal("0"),
    ),
    Tradable(
        "DE40",
        Decimal("0.1"),
        Decimal("2"),
        Decimal("0.1"),
        Decimal("1"),
        Decimal("0.055"),
        Decimal("0"),
    ),
    Tradable(
        "AAPL",
        Decimal("1"),
        Decimal("40"),
        Decimal("1"),
        Decimal("1"),
        Decimal("0.08"),
        Decimal("0.001"),
    ),
    Tradable(
        "TSLA",
        Decimal("1"),
        Decimal("30"),
        Decimal("1"),
        Decimal("1"),
        Decimal("0.08"),
        Decimal("0.001"),
    ),
    Tradable(
        "BTCUSD",
        Decimal("0.01"),
        Decimal("0.5"),
        Decimal("0.01"),
        Decimal("1"),
        Decimal("0.1"),
        Decimal("0"),
    ),
)
TRADABLE_BY_EPIC = {t.epic: t for t in TRADABLES}

# The most steps above the minimum a scripted size takes: a quarter of the range, at least one.
_SIZE_STEPS = {t.epic: max(int((t.max_size - t.min_size) / t.size_step) // 4, 1) for t in TRADABLES}
CLOSE_SOURCES = (("USER", 60), ("SL", 15), ("TP", 15), ("CLOSE_OUT", 5), ("DEALER", 5))


@dataclass
class Row:
    """One history row before rendering: UTC time, account, endpoint and wire fields."""

    ts: datetime
    account: int
    kind: str  # "transaction" | "activity"
    fields: dict[str, Any]
    order: int = 0  # tie-breaker among rows with the same timestamp (creation order)
    # The deal (position or working order) the row belongs to, never rendered: a deal the API
    # later closes or amends hides its scripted rows from that instant on (see simulator.book).
    deal: str | None = None


@dataclass
class PositionLife:
    """A position's whole life, used for /positions, /confirms and ground truth."""

    account: int
    deal_id: str
    deal_reference: str
    epic: str
    direction: str
    size: Decimal
    level: Decimal
    opened: datetime
    closed: datetime
    partial: list[tuple[datetime, Decimal]] = field(default_factory=list)
    working_order_id: str | None = None
    guaranteed_stop: bool = False
    stop_level: Decimal | None = None
    profit_level: Decimal | None = None
    amended: datetime | None = None  # when stop/profit took effect (None: from the open)
    trailing_stop: bool = False
    # Amendments through the API, oldest first: (from, stopLevel, profitLevel); the first entry
    # is the state before the first amendment.
    revisions: list[tuple[datetime, Decimal | None, Decimal | None]] = field(default_factory=list)

    def size_at(self, instant: datetime) -> Decimal:
        return self.size - sum((s for t, s in self.partial if t <= instant), Decimal(0))

    def stops_at(self, instant: datetime) -> tuple[Decimal | None, Decimal | None]:
        """(stopLevel, profitLevel) as shown at `instant`: an edit shows from its own row on."""
        if self.revisions:
            for at, stop, profit in reversed(self.revisions):
                if at <= instant:
                    return stop, profit
            return self.revisions[0][1:]
        if self.amended is not None and instant < self.amended:
            return None, None
        return self.stop_level, self.profit_level

    def amend(self, at: datetime, stop: Decimal | None, profit: Decimal | None) -> None:
        """Set stop and profit from `at` on, keeping what they were before for past instants."""
        if not self.revisions:
            self.revisions.append((self.opened, self.stop_level, self.profit_level))
        self.revisions.append((at, stop, profit))
        self.stop_level, self.profit_level = stop, profit


@dataclass
class OrderLife:
    account: int
    deal_id: str
    deal_reference: str
    epic: str
    direction: str
    size: Decimal
    level: Decimal
    order_type: str
    created: datetime
    ended: datetime
    outcome: str  # EXECUTED | CANCELLED | EXPIRED
    good_till: datetime | None
    stop_distance: Decimal | None = None
    profit_distance: Decimal | None = None
    guaranteed_stop: bool = False
    trailing_stop: bool = False


@dataclass
class DayEvents:
    day: date
    rows: list[Row]
    positions: list[PositionLife]
    orders: list[OrderLife]
    buckets: dict[tuple[int, str, date], list[Row]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for row in self.rows:
            self.buckets.setdefault((row.account, row.kind, row.ts.date()), []).append(row)


def day_number(day: date) -> int:
    return (day - EPOCH_DAY).days


def seeded_rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def _count(rng: random.Random, mean: float) -> int:
    whole = int(mean)
    return whole + (1 if rng.random() < mean - whole else 0)


def _size(rng: random.Random, t: Tradable) -> Decimal:
    return t.min_size + t.size_step * rng.randint(0, _SIZE_STEPS[t.epic])


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    total = sum(w for _, w in weighted)
    roll = rng.uniform(0, total)
    for name, weight in weighted:
        roll -= weight
        if roll <= 0:
            return name
    return weighted[-1][0]


class DayBuilder:
    """Collects the rows of one day's events. Every planned item (see `plan_day`) is built on
    its own: its ids and its rows' tie-break order derive from (day, account, item index), so an
    item built alone is exactly the item built with its whole day."""

    def __init__(self, world: World, day: date, lives_only: bool = False) -> None:
        self.world = world
        self.day = day
        self.lives_only = lives_only  # positions' lives only, no rows (see _position)
        self.start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        self.rows: list[Row] = []
        self.positions: list[PositionLife] = []
        self.orders: list[OrderLife] = []
        self.item = -1  # the item being built; -1: the day's cash rows
        self._local = 0

    def begin(self, item: int) -> None:
        self.item, self._local = item, 0

    def next_deal_id(self, account: int, sub: int = 0) -> str:
        seq = (self.item + 1) * IDS_PER_ITEM + sub
        return (
            f"{self.world.deal_prefix:08x}-{day_number(self.day) & 0xFFFF:04x}-54c4-"
            f"{account:04x}-{seq:012x}"
        )

    def order_reference(self, account: int) -> str:
        seq = (self.item + 1) * IDS_PER_ITEM + 3
        return f"o_{day_number(self.day):08x}-{account:04x}-4000-8000-{seq:012x}"

    def add(self, ts: datetime, account: int, kind: str, **fields: Any) -> None:
        order = (self.item + 1) * ROWS_PER_ITEM + self._local
        self._local += 1
        self.rows.append(Row(ts, account, kind, fields, order=order))

    def transaction(
        self,
        ts: datetime,
        account: int,
        tx_type: str,
        amount: Decimal,
        note: str,
        instrument: str | None = None,
        deal_id: str | None = None,
    ) -> None:
        fields: dict[str, Any] = {"transactionType": tx_type, "note": note, "size": money(amount)}
        if instrument is not None:
            fields["instrumentName"] = instrument
        if deal_id is not None:
            fields["dealId"] = deal_id
        self.add(ts, account, "transaction", **fields)

    def activity(
        self,
        ts: datetime,
        account: int,
        epic: str,
        deal_id: str,
        source: str,
        act_type: str,
        status: str,
        details: dict[str, Any],
    ) -> None:
        self.add(
            ts,
            account,
            "activity",
            epic=epic,
            dealId=deal_id,
            source=source,
            type=act_type,
            status=status,
            details=details,
        )


def _random_time(rng: random.Random, start: datetime, span_seconds: float) -> datetime:
    return start + timedelta(milliseconds=rng.randrange(0, max(int(span_seconds * 1000), 1)))


def _details(
    b: DayBuilder,
    t: Tradable,
    account: int,
    deal_ref: str,
    size: Decimal,
    direction: str,
    level: Decimal,
    **extra: Any,
) -> dict[str, Any]:
    details: dict[str, Any] = {
        "dealReference": deal_ref,
        "marketName": instrument(t.epic).name,
        "currency": b.world.accounts[account].wire_currency,
        "size": size,
        "direction": direction,
        "level": level,
        "guaranteedStop": bool(extra.pop("guaranteedStop", False)),
    }
    details.update({k: v for k, v in extra.items() if v is not None})
    return details


def _pnl(
    world: World,
    account: int,
    t: Tradable,
    direction: str,
    open_level: Decimal,
    close_level: Decimal,
    size: Decimal,
) -> Decimal:
    sign = 1 if direction == "BUY" else -1
    raw = (close_level - open_level) * size * t.point_value * sign
    return money(raw * world.fx(instrument(t.epic).currency, world.accounts[account].currency))


def _position(
    b: DayBuilder,
    rng: random.Random,
    account: int,
    plan: Planned,
    working_order_id: str | None = None,
    source: str = "USER",
) -> None:
    """A position's rows and life. With `b.lives_only` only the life is made (the random draws
    stay the same): what `World.open_positions` needs, at a fraction of the cost."""
    world = b.world
    opened, closed = plan.opened, plan.closed
    assert opened is not None and closed is not None
    first_row = len(b.rows)
    t = rng.choice(TRADABLES)
    if not world.market.is_open(t.epic, opened):
        t = TRADABLE_BY_EPIC["BTCUSD"]  # only crypto trades while the other markets are shut
    direction = rng.choice(("BUY", "SELL"))
    size = _size(rng, t)
    level = world.market.mid(t.epic, opened)
    deal_id = b.next_deal_id(account)
    ref = f"p_{deal_id}"
    gsl = rng.random() < 0.1
    life = PositionLife(
        account,
        deal_id,
        ref,
        t.epic,
        direction,
        size,
        level,
        opened,
        closed,
        working_order_id=working_order_id,
        guaranteed_stop=gsl,
    )
    b.positions.append(life)
    rows = not b.lives_only
    if rows:
        open_details = _details(
            b,
            t,
            account,
            ref,
            size,
            direction,
            level,
            guaranteedStop=gsl,
            workingOrderId=working_order_id,
            actions=[{"actionType": "POSITION_OPENED", "affectedDealId": deal_id}],
        )
        b.activity(opened, account, t.epic, deal_id, source, "POSITION", "ACCEPTED", open_details)
    notional = (
        size * level * world.fx(instrument(t.epic).currency, world.accounts[account].currency)
        if rows
        else Decimal(0)
    )
    if t.commission_rate and rows:
        b.transaction(
            opened + timedelta(milliseconds=1),
            account,
            "TRADE_COMMISSION",
            -money(notional * t.commission_rate),
            "Commission",
            instrument=t.epic,
        )
    span = (closed - opened).total_seconds()
    if rng.random() < 0.3:  # stop/limit edit
        edited = opened + timedelta(seconds=span * rng.uniform(0.1, 0.5))
        offset = level * Decimal("0.02")
        stop = (level - offset if direction == "BUY" else level + offset).quantize(level)
        profit = (level + offset if direction == "BUY" else level - offset).quantize(level)
        status, source = _pick(
            rng, (("MODIFIED|USER", 85), ("REJECTED|SYSTEM", 10), ("MODIFY_REJECT|USER", 5))
        ).split("|")
        if status == "MODIFIED":  # a rejected edit leaves the position as it was
            life.stop_level, life.profit_level, life.amended = stop, profit, edited
        if rows:
            b.activity(
                edited,
                account,
                t.epic,
                deal_id,
                source,
                "EDIT_STOP_AND_LIMIT",
                status,
                _details(
                    b,
                    t,
                    account,
                    ref,
                    size,
                    direction,
                    level,
                    guaranteedStop=gsl,
                    stopLevel=stop,
                    profitLevel=profit,
                ),
            )
    remaining = size
    if rng.random() < 0.15 and size > t.min_size:  # partial close, at the time the plan drew
        part_at = plan.partial_at
        part = max(t.min_size, (size / 2).quantize(t.size_step))
        if part < size:
            remaining = size - part
            life.partial.append((part_at, part))
            if rows:
                part_level = world.market.mid(t.epic, part_at)
                b.activity(
                    part_at,
                    account,
                    t.epic,
                    deal_id,
                    "USER",
                    "POSITION",
                    "ACCEPTED",
                    _details(
                        b,
                        t,
                        account,
                        ref,
                        part,
                        direction,
                        part_level,
                        guaranteedStop=gsl,
                        actions=[
                            {"actionType": "POSITION_PARTIALLY_CLOSED", "affectedDealId": deal_id}
                        ],
                    ),
                )
                b.transaction(
                    part_at,
                    account,
                    "TRADE",
                    _pnl(world, account, t, direction, level, part_level, part),
                    "Trade closed",
                    instrument=t.epic,
                    deal_id=deal_id,
                )
    close_source = _pick(rng, CLOSE_SOURCES)
    if not rows:
        return
    # Overnight financing at every UTC midnight the position is held over.
    for midnight in plan.midnights():
        held = life.size_at(midnight)
        fee = notional * held / size * t.swap_rate / 365
        amount = -money(fee) if direction == "BUY" else money(fee * Decimal("0.3"))
        if amount:
            b.transaction(midnight, account, "SWAP", amount, "Overnight fee", instrument=t.epic)
            b.activity(
                midnight,
                account,
                t.epic,
                deal_id,
                "SYSTEM",
                "SWAP",
                "ACCEPTED",
                _details(b, t, account, ref, held, direction, level, guaranteedStop=gsl),
            )
    close_level = world.market.mid(t.epic, closed)
    b.activity(
        closed,
        account,
        t.epic,
        deal_id,
        close_source,
        "POSITION",
        "ACCEPTED",
        _details(
            b,
            t,
            account,
            ref,
            remaining,
            direction,
            close_level,
            guaranteedStop=gsl,
            actions=[{"actionType": "POSITION_CLOSED", "affectedDealId": deal_id}],
        ),
    )
    b.transaction(
        closed,
        account,
        "TRADE",
        _pnl(world, account, t, direction, level, close_level, remaining),
        "Trade closed",
        instrument=t.epic,
        deal_id=deal_id,
    )
    if gsl:
        b.transaction(
            closed + timedelta(milliseconds=2),
            account,
            "TRADE_COMMISSION_GSL",
            -money(notional * Decimal("0.0003")),
            "Guaranteed stop fee",
            instrument=t.epic,
        )
    for row in b.rows[first_row:]:
        row.deal = deal_id


def _working_order(b: DayBuilder, rng: random.Random, account: int, plan: Planned) -> None:
    world = b.world
    first_row = len(b.rows)
    t = rng.choice(TRADABLES)
    direction = rng.choice(("BUY", "SELL"))
    size = _size(rng, t)
    created, good_till, outcome, ended = plan.start, plan.good_till, plan.outcome, plan.ended
    assert ended is not None and outcome is not None
    order_type = rng.choice(("LIMIT", "STOP"))
    deal_id = b.next_deal_id(account, 1)
    if b.lives_only:  # only the position it opened, if any (the draws below use no rng)
        rng.random()
        if outcome == "EXECUTED":
            _position(b, rng, account, plan, working_order_id=deal_id, source="SYSTEM")
        return
    mid = world.market.mid(t.epic, created)
    away = Decimal("0.995") if (direction == "BUY") == (order_type == "LIMIT") else Decimal("1.005")
    level = (mid * away).quantize(mid)
    ref = b.order_reference(account)
    extra = {"goodTillDate": good_till.strftime("%Y-%m-%dT%H:%M:%S") if good_till else None}
    b.activity(
        created,
        account,
        t.epic,
        deal_id,
        "USER",
        "WORKING_ORDER",
        "CREATED",
        _details(b, t, account, ref, size, direction, level, **extra),
    )
    end_source = "USER" if outcome == "CANCELLED" else "SYSTEM"
    b.activity(
        ended,
        account,
        t.epic,
        deal_id,
        end_source,
        "WORKING_ORDER",
        outcome,
        _details(b, t, account, ref, size, direction, level, **extra),
    )
    distances = (None, None)
    if rng.random() < 0.5:
        step = max(Decimal(1), (level * Decimal("0.002")).quantize(Decimal(1)))
        distances = (step, step * 2)
    b.orders.append(
        OrderLife(
            account,
            deal_id,
            ref,
            t.epic,
            direction,
            size,
            level,
            order_type,
            created,
            ended,
            outcome,
            good_till,
            *distances,
        )
    )
    for row in b.rows[first_row:]:
        row.deal = deal_id
    if outcome == "EXECUTED":
        _position(b, rng, account, plan, working_order_id=deal_id, source="SYSTEM")


def _cash(b: DayBuilder, rng: random.Random, account: int, spec_opened: date) -> None:
    acct = b.world.accounts[account]
    base = acct.base_amount
    if b.day == spec_opened:
        b.transaction(b.start + timedelta(hours=8), account, "DEPOSIT", base * 10, "Deposit")
    if rng.random() < 0.04:
        b.transaction(
            _random_time(rng, b.start, 86400),
            account,
            "DEPOSIT",
            base * rng.randint(1, 5),
            "Deposit",
        )
    if rng.random() < 0.02:
        b.transaction(
            _random_time(rng, b.start, 86400),
            account,
            "WITHDRAWAL",
            -base * rng.randint(1, 3),
            "Withdrawal",
        )
    sprinkle = (
        ("FX_COMMISSION", 0.02, -1, "FX conversion fee"),
        ("ADJUSTMENT", 0.01, 0, "Balance adjustment"),
        ("BONUS", 0.005, 1, "Bonus"),
        ("REFUND", 0.005, 1, "Refund"),
        ("CORPORATE_ACTION", 0.008, 0, "Dividend adjustment"),
        ("TRADE_CORRECTION", 0.005, 0, "Trade correction"),
        ("CHARGEBACK", 0.001, -1, "Chargeback"),
        ("TRADE_SLIPPAGE_PROTECTION", 0.004, 1, "Slippage protection"),
    )
    for tx_type, probability, sign, note in sprinkle:
        if rng.random() < probability:
            value = money(Decimal(rng.randint(50, 5000)) / 100)
            signed = value * (sign if sign else rng.choice((-1, 1)))
            b.transaction(_random_time(rng, b.start, 86400), account, tx_type, signed, note)
    if b.day.day == 1 and b.day > spec_opened:
        # A monthly rebate booked exactly at 00:00:00.000 UTC: a row on both a day and a month
        # boundary, where window inclusivity matters.
        b.transaction(b.start, account, "REBATE", money(base / 100), "Monthly rebate")


class Planned(NamedTuple):
    """One item of an account's day, as planned before any price is read: its kind and when
    its rows fall. What it trades comes later, from its own seed (see `build_item`)."""

    index: int
    kind: str  # "position" | "order" | "rejected"
    start: datetime  # opened, created, or the rejected attempt's time
    closed: datetime | None = None  # the position's close (an executed order's position's too)
    ended: datetime | None = None  # orders: when the order ended
    outcome: str | None = None  # orders: EXECUTED | CANCELLED | EXPIRED
    good_till: datetime | None = None
    partial_at: datetime | None = None  # when the position is partly closed, if it ever is
    seed: int = 0  # of the item's own random numbers (drawn by the plan: no hashing per item)

    @property
    def opened(self) -> datetime | None:
        """When the item's position opens: a position's start, an executed order's end."""
        if self.kind == "position":
            return self.start
        return self.ended if self.closed is not None else None

    def midnights(self) -> list[datetime]:
        """The UTC midnights the position is held over (each books a swap)."""
        opened, closed = self.opened, self.closed
        if opened is None or closed is None:
            return []
        midnight = datetime(opened.year, opened.month, opened.day, tzinfo=UTC) + _ONE_DAY
        found = []
        while midnight < closed:
            found.append(midnight)
            midnight += _ONE_DAY
        return found


_ONE_DAY = timedelta(days=1)


def _hold(rng: random.Random) -> int:
    """A holding time in ms: 60 % within a session (1 min to 8 h), the rest 8 h to 4 days."""
    if rng.random() < 0.6:
        return int((60 + rng.random() * (8 * 3600 - 60)) * 1000)
    return int((8 * 3600 + rng.random() * (4 * 86400 - 8 * 3600)) * 1000)


_US = timedelta(microseconds=1)
_DAY_US = 86_400_000_000


class DayPlan:
    """An account's planned items of one day, kept as plain integers (microseconds after the
    day's midnight) so a plan of thousands of items is cheap to draw and to search; an item
    becomes a `Planned` only when it is asked for."""

    __slots__ = ("begins", "closes", "kinds", "midnight", "opens", "orders", "partials", "seeds")

    def __init__(self, midnight: datetime) -> None:
        self.midnight = midnight
        self.kinds: list[str] = []
        self.begins: list[int] = []  # the item's first row
        self.opens: list[int] = []  # when its position opens; -1: it has none
        self.closes: list[int] = []  # when its position closes; -1: it has none
        self.partials: list[int] = []  # when its position may be partly closed; -1: never
        self.seeds: list[int] = []
        self.orders: dict[int, tuple[int, str, datetime | None]] = {}  # ended, outcome, gtd

    def __len__(self) -> int:
        return len(self.kinds)

    def __iter__(self) -> Iterator[Planned]:
        return (self.item(i) for i in range(len(self.kinds)))

    def _at(self, us: int) -> datetime:
        return self.midnight + us * _US

    def _us(self, instant: datetime) -> int:
        return (instant - self.midnight) // _US

    def item(self, index: int) -> Planned:
        at, kind = self._at, self.kinds[index]
        close, part = self.closes[index], self.partials[index]
        ended = outcome = good_till = None
        if kind == "order":
            ended_us, outcome, good_till = self.orders[index]
            ended = at(ended_us)
        return Planned(
            index, kind, at(self.begins[index]), at(close) if close >= 0 else None, ended,
            outcome, good_till, at(part) if part >= 0 else None, self.seeds[index],
        )  # fmt: skip

    def open_at(self, instant: datetime) -> list[Planned]:
        """Items whose position is open at `instant`."""
        now = self._us(instant)
        return [
            self.item(i)
            for i, (o, c) in enumerate(zip(self.opens, self.closes, strict=True))
            if 0 <= o <= now < c
        ]

    def orders_open_at(self, instant: datetime) -> list[Planned]:
        now = self._us(instant)
        return [
            self.item(i)
            for i, (ended, _, _) in self.orders.items()
            if self.begins[i] <= now < ended
        ]

    def transacting(self, start: datetime, end: datetime) -> list[Planned]:
        """Items that may have a transaction in `[start, end)`: commission, partial close,
        swaps, closing trade and guaranteed-stop fee all fall on times the plan knows."""
        s, e = self._us(start), self._us(end)
        midnight = -(-s // _DAY_US) * _DAY_US  # the first midnight at or after `start`
        found = []
        for i, (o, c, p) in enumerate(zip(self.opens, self.closes, self.partials, strict=True)):
            if o < 0 or c + 2000 < s or o >= e:
                continue
            if (
                s <= o + 1000 < e
                or (c < e and c + 2000 >= s)
                or s <= p < e
                or (midnight < e and o < midnight < c)
            ):
                found.append(self.item(i))
        return found


def plan_day(world: World, account: int, day: date) -> DayPlan:
    """The items an account's day starts, with their times only: cheap (no price is read), so
    which items touch an instant or a window is known without building any row."""
    acct = world.accounts[account]
    plan = DayPlan(datetime(day.year, day.month, day.day, tzinfo=UTC))
    if day <= acct.opened:  # trading starts the day after the first deposit
        return plan
    rng = seeded_rng(world.seed, "plan", account, day.isoformat())
    random_, bits = rng.random, rng.getrandbits
    latest = (HORIZON_DAYS - 1) * 86_400_000  # ms after midnight
    kinds, begins, opens, closes = plan.kinds, plan.begins, plan.opens, plan.closes
    partials, seeds = plan.partials, plan.seeds
    for _ in range(_count(rng, world.positions_per_day)):
        opened = int(random_() * 86_400_000)
        closed = min(opened + _hold(rng), latest)
        part = opened + int((closed - opened) * (0.5 + 0.4 * random_()))
        kinds.append("position")
        begins.append(opened * 1000)
        opens.append(opened * 1000)
        closes.append(closed * 1000)
        partials.append(part * 1000)
        seeds.append(bits(64))
    start = plan.midnight
    for _ in range(_count(rng, world.orders_per_day)):
        created = int(random_() * 86_400_000)
        good_till = None
        if random_() < 0.5:
            good_till = start + timedelta(milliseconds=created, hours=rng.randint(2, 48))
            good_till = good_till.replace(second=0, microsecond=0)
        outcome = _pick(rng, (("EXECUTED", 50), ("CANCELLED", 30), ("EXPIRED", 20)))
        if outcome == "EXPIRED" and good_till is None:
            outcome = "CANCELLED"
        if outcome == "EXPIRED":
            assert good_till is not None
            ended = (good_till - start) // timedelta(milliseconds=1)
        else:
            ended = created + int((30 + random_() * (36 * 3600 - 30)) * 1000)
            if good_till is not None and start + timedelta(milliseconds=ended) > good_till:
                ended = (good_till - start) // timedelta(milliseconds=1) - 1000
        closed = part = -1
        if outcome == "EXECUTED":
            closed = min(ended + _hold(rng), latest)
            part = ended + int((closed - ended) * (0.5 + 0.4 * random_()))
        plan.orders[len(kinds)] = (ended * 1000, outcome, good_till)
        kinds.append("order")
        begins.append(created * 1000)
        opens.append(ended * 1000 if closed >= 0 else -1)
        closes.append(closed * 1000 if closed >= 0 else -1)
        partials.append(part * 1000 if part >= 0 else -1)
        seeds.append(bits(64))
    if random_() < 0.03:  # a rejected attempt leaves an activity row and nothing else
        kinds.append("rejected")
        begins.append(int(random_() * 86_400_000) * 1000)
        opens.append(-1)
        closes.append(-1)
        partials.append(-1)
        seeds.append(bits(64))
    return plan


def build_item(b: DayBuilder, account: int, item: Planned) -> None:
    """Add one planned item's rows, positions and orders to the builder of its day."""
    world = b.world
    rng = random.Random(item.seed)
    b.begin(item.index)
    if item.kind == "position":
        _position(b, rng, account, item)
    elif item.kind == "order":
        _working_order(b, rng, account, item)
    else:
        t = rng.choice(TRADABLES)
        ts = item.start
        deal_id = b.next_deal_id(account, 2)
        b.activity(
            ts,
            account,
            t.epic,
            deal_id,
            "USER",
            "POSITION",
            "REJECTED",
            _details(
                b, t, account, f"p_{deal_id}", _size(rng, t), "BUY", world.market.mid(t.epic, ts)
            ),
        )


def cash_rows(b: DayBuilder) -> None:
    """The day's deposits, withdrawals, fees, rebates and transfers: rows of the day itself."""
    world, day = b.world, b.day
    b.begin(-1)
    for index, acct in enumerate(world.accounts):
        if day >= acct.opened:
            _cash(b, seeded_rng(world.seed, "cash", index, day.isoformat()), index, acct.opened)
    _transfers(b, seeded_rng(world.seed, "client-day", day.isoformat()))


def generate_day(world: World, day: date) -> DayEvents:
    b = DayBuilder(world, day)
    cash_rows(b)
    for index in range(len(world.accounts)):
        for item in plan_day(world, index, day):
            build_item(b, index, item)
    return DayEvents(day, b.rows, b.positions, b.orders)


def _transfers(b: DayBuilder, rng: random.Random) -> None:
    world = b.world
    live = [i for i, a in enumerate(world.accounts) if a.opened < b.day]
    if len(live) < 2 or rng.random() >= 0.02:
        return
    source, target = rng.sample(live, 2)
    ts = _random_time(rng, b.start, 86400)
    amount = money(world.accounts[source].base_amount * rng.randint(1, 3) / 2)
    converted = money(
        amount * world.fx(world.accounts[source].currency, world.accounts[target].currency)
    )
    b.transaction(ts, source, "TRANSFER", -amount, "Transfer to another account")
    b.transaction(ts, target, "TRANSFER", converted, "Transfer from another account")
