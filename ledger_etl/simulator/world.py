"""The simulated client: its financial accounts, their history, and the ground truth.

History is produced lazily, one UTC day at a time, by `events.generate_day`, and kept in a small
LRU cache, so a year at thousands of rows a day never sits in memory at once. Balances come from
drawn per-day and per-slot totals (`balances.DayTotals`), the rows of the instant's own slot and
the items open at an instant from items built alone (`events.plan_day`, `events.build_item`):
no request has to generate a whole day to answer a login.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Protocol
from zoneinfo import ZoneInfo

from ledger_etl.simulator.balances import SUM_CONTEXT, DayTotals, settlement_row
from ledger_etl.simulator.book import DealBook
from ledger_etl.simulator.events import (
    EPOCH_DAY,
    HORIZON_DAYS,
    IDS_PER_ITEM,
    DayBuilder,
    DayEvents,
    DayPlan,
    OrderLife,
    Planned,
    PositionLife,
    Row,
    build_item,
    cash_rows,
    day_number,
    generate_day,
    plan_day,
    seeded_rng,
)

ONE_DAY = timedelta(days=1)
Item = tuple[list[Row], list[PositionLife], list[OrderLife]]

# Rates used to convert P&L and transfers between currencies (units of USD per unit).
USD_RATES = {
    "USD": Decimal("1"),
    "EUR": Decimal("1.08"),
    "GBP": Decimal("1.27"),
    "JPY": Decimal("0.0067"),
    "CHF": Decimal("1.12"),
}
ACCOUNT_TEMPLATES = (
    ("USD", "$", "USD account"),
    ("EUR", "€", "EUR account"),
    ("GBP", "£", "GBP account"),
    ("CHF", "CHF", "CHF account"),
)


# The market whose mid converts one unit of a currency into USD (`inverted`: USD per unit is 1/mid).
FX_MARKETS = {"EUR": ("EURUSD", False), "GBP": ("GBPUSD", False), "JPY": ("USDJPY", True),
              "CHF": ("USDCHF", True)}  # fmt: skip


class PriceSource(Protocol):
    def mid(self, epic: str, instant: datetime) -> Decimal: ...

    def is_open(self, epic: str, instant: datetime) -> bool: ...


@dataclass(frozen=True)
class AccountSpec:
    index: int
    account_id: str
    name: str
    currency: str
    symbol: str
    opened: date
    demo: bool
    preferred: bool
    account_type: str = "CFD"
    status: str = "ENABLED"

    @property
    def wire_currency(self) -> str:
        """Demo accounts report currencies with a trailing `d` (`USDd`)."""
        return f"{self.currency}d" if self.demo else self.currency

    @property
    def base_amount(self) -> Decimal:
        return Decimal(1000)


@dataclass(frozen=True)
class WorldConfig:
    seed: int = 42
    start: date = date(2025, 1, 1)
    accounts: int = 2
    rows_per_day: float = 12.0  # rough rows per account per day, both endpoints together
    demo: bool = True
    timezone: str = "Europe/Nicosia"  # the client's platform timezone for local `date` fields

    def __post_init__(self) -> None:
        if not 1 <= self.accounts <= len(ACCOUNT_TEMPLATES):
            raise ValueError(f"accounts must be between 1 and {len(ACCOUNT_TEMPLATES)}")
        if self.rows_per_day <= 0:
            raise ValueError("rows_per_day must be positive")


# Generated days kept in memory: as many as hold about this many rows, within the bounds below.
# A sparse world keeps every day a backfill walks through more than once (each account, each
# endpoint, each re-check); a dense one keeps at least the last weeks.
CACHE_ROWS = 100_000
MIN_CACHE_DAYS = 48
MAX_CACHE_DAYS = 1_000


def days_to_cache(config: WorldConfig) -> int:
    rows_per_day = max(1.0, config.rows_per_day * config.accounts)
    return max(MIN_CACHE_DAYS, min(MAX_CACHE_DAYS, int(CACHE_ROWS / rows_per_day)))


class World:
    def __init__(
        self,
        config: WorldConfig,
        market: PriceSource,
        cache_days: int | None = None,
        item_cache: int = 16_384,
    ) -> None:
        self.config = config
        self.seed = config.seed
        self.market = market
        self.zone = ZoneInfo(config.timezone)
        rng = seeded_rng(config.seed, "client")
        self.client_id = str(rng.randrange(10_000_000, 99_999_999))
        self.deal_prefix = rng.randrange(0x10000, 0xFFFFFF)
        self.accounts: tuple[AccountSpec, ...] = tuple(
            AccountSpec(
                index=i,
                account_id=str(rng.randrange(10**16, 10**17)),
                name=ACCOUNT_TEMPLATES[i][2],
                currency=ACCOUNT_TEMPLATES[i][0],
                symbol=ACCOUNT_TEMPLATES[i][1],
                opened=config.start + timedelta(days=3 * i),
                demo=config.demo,
                preferred=i == 0,
            )
            for i in range(config.accounts)
        )
        # A position yields ~5.5 rows on average; an order two or three more.
        self.positions_per_day = config.rows_per_day / 5.5
        self.orders_per_day = config.rows_per_day / 12
        self._cache: OrderedDict[date, DayEvents] = OrderedDict()
        self._cache_days = cache_days or days_to_cache(config)
        self._lock = threading.Lock()
        self._pending: dict[date, threading.Event] = {}
        self.days_generated = 0  # calls of generate_day, for tests and benchmarks
        self.items_built = 0  # items built alone (see `item`)
        # Plans and items built on their own (see events.plan_day), for balances inside a day
        # and open deals: a login never generates a whole day.
        self._plans: OrderedDict[tuple[int, date], DayPlan] = OrderedDict()
        self._items: OrderedDict[tuple[int, date, int, bool], Item] = OrderedDict()
        self._item_cache = item_cache
        self.totals = DayTotals(self)
        self.book = DealBook(self)

    # -- accounts -----------------------------------------------------------------------------
    def account(self, account_id: str) -> AccountSpec | None:
        return next((a for a in self.accounts if a.account_id == account_id), None)

    def fx(self, from_ccy: str, to_ccy: str) -> Decimal:
        """The fixed rates the scripted history was booked with."""
        return USD_RATES[from_ccy] / USD_RATES[to_ccy]

    def fx_at(self, from_ccy: str, to_ccy: str, instant: datetime) -> Decimal:
        """Units of `to_ccy` per unit of `from_ccy` from the FX markets' mids at `instant`:
        what dealing and unrealised P&L convert with (a cross goes through USD)."""
        if from_ccy == to_ccy:
            return Decimal(1)
        return self._usd_per(from_ccy, instant) / self._usd_per(to_ccy, instant)

    def _usd_per(self, ccy: str, instant: datetime) -> Decimal:
        if ccy == "USD":
            return Decimal(1)
        epic, inverted = FX_MARKETS[ccy]
        mid = self.market.mid(epic, instant)
        return 1 / mid if inverted else mid

    def utc_offset_hours(self, instant: datetime) -> int:
        offset = instant.astimezone(self.zone).utcoffset() or timedelta(0)
        return int(offset.total_seconds() // 3600)

    # -- days ---------------------------------------------------------------------------------
    def day_events(self, day: date) -> DayEvents:
        while True:
            with self._lock:
                cached = self._cache.get(day)
                if cached is not None:
                    self._cache.move_to_end(day)
                    return cached
                pending = self._pending.get(day)
                if pending is None:
                    pending = self._pending[day] = threading.Event()
                    break
            # Another thread is producing this day (a warm-up and a request often want the same
            # recent days): wait for its result rather than spend the CPU twice.
            pending.wait()
        try:
            events = generate_day(self, day)
            with self._lock:
                self.days_generated += 1
                self._cache[day] = events
                while len(self._cache) > self._cache_days:
                    self._cache.popitem(last=False)
        finally:
            with self._lock:
                del self._pending[day]
            pending.set()
        return events

    def rows_on(self, day: date, account: int, kind: str) -> list[Row]:
        """Every row of one account and endpoint whose UTC time falls on `day`, oldest first:
        the script's rows the deal book leaves visible, and the book's own."""
        rows = [r for r in self.scripted_rows_on(day, account, kind) if self.book.visible(r)]
        added = self.book.rows_on(day, account, kind)
        if added:
            rows = sorted(rows + added, key=lambda r: r.ts)  # stable: scripted rows first
        return rows

    def scripted_rows_on(self, day: date, account: int, kind: str) -> list[Row]:
        """The script's rows of one account and endpoint on `day`, hidden ones included."""
        keyed: list[tuple[datetime, int, int, Row]] = []
        first = max(self.config.start, day - timedelta(days=HORIZON_DAYS))
        source = first
        while source <= day:
            for row in self.day_events(source).buckets.get((account, kind, day), ()):
                keyed.append((row.ts, day_number(source), row.order, row))
            source += timedelta(days=1)
        keyed.sort(key=lambda k: k[:3])
        rows = [k[3] for k in keyed]
        if kind == "transaction":
            acct = self.accounts[account]
            rows = self._settled(account, day, rows)
            for seq, row in enumerate(rows):
                # 15 digits: 1, day number, account, sequence, 000: unique, increasing with time;
                # the last three digits leave room for the deal book's rows (see simulator.book).
                row.fields["reference"] = f"1{day_number(day):05d}{account}{seq + 1:05d}000"
                row.fields["currency"] = acct.wire_currency
                row.fields["status"] = "PROCESSED"
        return rows

    def _settled(self, account: int, day: date, rows: list[Row]) -> list[Row]:
        """The day's rows with each settlement slot's adjustment as its last row, so the rows
        of every slot add up to the slot's drawn net (see simulator.balances)."""
        totals = self.totals
        nets = totals.slot_nets(account, day)
        slots: list[list[Row]] = [[] for _ in nets]
        for row in rows:
            slots[totals.slot_of(row.ts)].append(row)
        out: list[Row] = []
        for slot, (net, booked) in enumerate(zip(nets, slots, strict=True)):
            with localcontext(SUM_CONTEXT):
                rest = net - sum((r.fields["size"] for r in booked), Decimal(0))
            at = totals.settlement_time(day, slot)
            same = sum(1 for r in booked if r.ts == at)  # rows of its millisecond come first
            out += booked[:same]
            if rest:
                out.append(settlement_row(account, at, rest))
            out += booked[same:]
        return out

    def rows_between(
        self, account: int, kind: str, start: datetime, end: datetime
    ) -> Iterator[Row]:
        """Rows with `start <= ts < end`, oldest first."""
        if end <= start:
            return
        day = max(start.date(), self.config.start)
        while datetime(day.year, day.month, day.day, tzinfo=UTC) < end:
            for row in self.rows_on(day, account, kind):
                if start <= row.ts < end:
                    yield row
            day += timedelta(days=1)

    # -- items built on their own ----------------------------------------------------------------
    def plan(self, account: int, day: date) -> DayPlan:
        key = (account, day)
        with self._lock:
            found = self._plans.get(key)
            if found is not None:
                self._plans.move_to_end(key)
                return found
        found = plan_day(self, account, day)
        with self._lock:
            self._plans[key] = found
            while len(self._plans) > 64 * len(self.accounts):
                self._plans.popitem(last=False)
        return found

    def item(self, account: int, day: date, planned: Planned, lives_only: bool = False) -> Item:
        """One planned item's rows, positions and orders, exactly as its whole day has them
        (with `lives_only`, its positions only: no rows, no orders)."""
        key = (account, day, planned.index, lives_only)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        b = DayBuilder(self, day, lives_only)
        build_item(b, account, planned)
        found = (b.rows, b.positions, b.orders)
        with self._lock:
            self.items_built += 1
            self._items[key] = found
            while len(self._items) > self._item_cache:
                self._items.popitem(last=False)
        return found

    def _plans_since(self, account: int, day: date) -> Iterator[tuple[date, DayPlan]]:
        """The plans of the days whose rows can reach `day` (a horizon back), oldest first."""
        source = max(self.config.start, day - timedelta(days=HORIZON_DAYS))
        while source <= day:
            yield source, self.plan(account, source)
            source += ONE_DAY

    def scripted_transactions(self, account: int, start: datetime, end: datetime) -> list[Row]:
        """The script's transactions of one account with `start <= ts < end` inside one UTC day
        (hidden ones included, the day's settlement not), from the items that touch it."""
        day = start.date()
        rows: list[Row] = []
        if day >= self.config.start:
            b = DayBuilder(self, day)
            cash_rows(b)
            rows += [r for r in b.rows if r.account == account and r.kind == "transaction"]
        for source, plan in self._plans_since(account, day):
            for planned in plan.transacting(start, end):
                rows += [r for r in self.item(account, source, planned)[0]
                         if r.kind == "transaction"]  # fmt: skip
        return [r for r in rows if start <= r.ts < end]

    # -- balances -----------------------------------------------------------------------------
    def balance_at(self, account: int, instant: datetime) -> Decimal:
        """Sum of the account's transactions strictly before `instant`: the drawn nets of the
        days and settlement slots before it; inside a slot, whose settlement is its first row,
        the slot's net less its rows from the instant to the slot's end (built from the items
        that transact there); plus what dealing changed."""
        cut = instant.astimezone(UTC)
        totals = self.totals
        if cut.date() < self.config.start:
            total = Decimal(0)
        else:
            day, slot = cut.date(), totals.slot_of(cut)
            start = totals.slot_start(day, slot)
            if cut <= start:
                total = totals.before_slot(account, day, slot)
            else:
                after = totals.before_slot(account, day, slot + 1)
                rest = self.scripted_transactions(account, cut, totals.slot_end(day, slot))
                with localcontext(SUM_CONTEXT):  # the rows above may round: built outside
                    total = after - sum((r.fields["size"] for r in rest), Decimal(0))
        # Above are the script's rows, hidden ones included: the book says what it changed.
        return total + self.book.balance_delta(account, cut)

    def warm_up(self, now: datetime) -> None:
        """Do ahead of time what a login at `now` needs: every account's balance and open
        positions, whose items are then in the item cache."""
        for account in range(len(self.accounts)):
            self.balance_at(account, now)
            self.open_positions(account, now)
            self.open_orders(account, now)

    # -- state at an instant ------------------------------------------------------------------
    def open_positions(self, account: int, now: datetime) -> list[PositionLife]:
        """Positions open at `now`, oldest first (by open time, then dealId)."""
        found = [
            p
            for source, plan in self._plans_since(account, now.date())
            for planned in plan.open_at(now)
            for p in self.item(account, source, planned, lives_only=True)[1]
            if p.opened <= now < p.closed and self.book.scripted_alive(p.deal_id, now)
        ]
        found += self.book.open_positions(account, now)
        return sorted(found, key=lambda p: (p.opened, p.deal_id))

    def open_orders(self, account: int, now: datetime) -> list[OrderLife]:
        found = [
            o
            for source, plan in self._plans_since(account, now.date())
            for planned in plan.orders_open_at(now)
            for o in self.item(account, source, planned)[2]
            if o.created <= now < o.ended and self.book.scripted_alive(o.deal_id, now)
        ]
        found += self.book.open_orders(account, now)
        return sorted(found, key=lambda o: (o.created, o.deal_id))

    def find_deal(self, deal_reference: str) -> PositionLife | OrderLife | None:
        """Look a deal reference up by the day, account and item encoded in its id (see
        `events.DayBuilder`): only that item is built."""
        try:
            parts = deal_reference[2:].split("-")
            if deal_reference.startswith("p_"):
                base = EPOCH_DAY + timedelta(days=int(parts[1], 16))
                account, seq = int(parts[3], 16), int(parts[4], 16)
            elif deal_reference.startswith("o_"):
                base = EPOCH_DAY + timedelta(days=int(parts[0], 16))
                account, seq = int(parts[1], 16), int(parts[4], 16)
            else:
                return None
        except (ValueError, IndexError, OverflowError):
            return None
        if not (
            self.config.start <= base <= date(9999, 1, 1) and 0 <= account < len(self.accounts)
        ):
            return None
        plan = self.plan(account, base)
        index = seq // IDS_PER_ITEM - 1
        if not 0 <= index < len(plan):
            return None
        _, positions, orders = self.item(account, base, plan.item(index))
        for item in [*positions, *orders]:
            if item.deal_reference == deal_reference:
                return item
        return None
