"""Price bars: parsing at the edge (REST rows, stream events) and the `price_bars` store.

A bar is keyed by (epic, resolution, bar type, open time); bid and ask are its two price types,
stored side by side because the stream sends them as separate events of one bar. Rules:
- a stream value is `final` only when the server's clock had passed the bar's close before the
  event arrived (the caller decides, from the quotes it saw); otherwise it is provisional;
- a REST value supersedes a stream value and is final (only closed bars are ever asked for);
- `revision` counts changes of a bar's values; a repeated identical value changes nothing, so
  duplicated events and re-run backfills are idempotent.
Prices are Decimal from the wire (JSON parsed with `parse_float=Decimal`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, select

from ledger_etl.intervals import Window, coverage_gaps, merge_windows
from ledger_etl.ledger.schema import price_bars, price_coverage

RESOLUTIONS: dict[str, int] = {
    "MINUTE": 60, "MINUTE_5": 300, "MINUTE_15": 900, "MINUTE_30": 1_800,
    "HOUR": 3_600, "HOUR_4": 14_400, "DAY": 86_400, "WEEK": 604_800,
}  # fmt: skip
SIDES = ("bid", "ask")
FIELDS = tuple(f"{side}_{k}" for side in SIDES for k in "ohlc")


class BarError(ValueError):
    """A bar that cannot be taken as it came (the message says why)."""


@dataclass(frozen=True)
class BarUpdate:
    """Values for one bar from one source; a side is None when this update does not carry it."""

    epic: str
    resolution: str
    bar_type: str
    t: datetime
    bid: tuple[Decimal, Decimal, Decimal, Decimal] | None
    ask: tuple[Decimal, Decimal, Decimal, Decimal] | None
    source: str  # "stream" | "rest"
    final: bool
    volume: int | None = None

    @property
    def key(self) -> tuple[str, str, str, datetime]:
        return (self.epic, self.resolution, self.bar_type, self.t)


def _price(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise BarError(f"{what} is not a number: {value!r}")
    number = Decimal(value)
    if not number.is_finite() or number <= 0:
        raise BarError(f"{what} is not a positive finite price: {value!r}")
    return number


def _check(ohlc: tuple[Decimal, Decimal, Decimal, Decimal], *what: object) -> None:
    """Open and close within low..high; `what` names the bar (joined only for the error)."""
    o, h, l, c = ohlc  # noqa: E741
    if not (l <= o <= h and l <= c <= h):
        name = " ".join(str(w() if callable(w) else w) for w in what)
        raise BarError(f"{name}: open/close outside low..high ({o}, {h}, {l}, {c})")


def from_event(payload: dict[str, Any], final: bool) -> BarUpdate:
    """An `ohlc.event` payload (JSON parsed with Decimal floats) → a one-sided update."""
    try:
        epic, resolution = payload["epic"], payload["resolution"]
        bar_type, side, stamp = payload.get("type", "classic"), payload["priceType"], payload["t"]
    except (KeyError, TypeError):
        raise BarError("ohlc event without epic, resolution, priceType or t") from None
    if resolution not in RESOLUTIONS or side not in SIDES or not isinstance(epic, str):
        raise BarError(f"ohlc event with unknown resolution or price type: {resolution}/{side}")
    if isinstance(stamp, bool) or not isinstance(stamp, int) or stamp % 1000:
        raise BarError(f"ohlc event time is not whole epoch seconds in ms: {stamp!r}")
    ohlc = tuple(_price(payload.get(k), f"ohlc {k}") for k in "ohlc")
    _check(ohlc, epic, resolution, stamp)  # type: ignore[arg-type]
    t = datetime.fromtimestamp(stamp // 1000, UTC)
    sides = {"bid": None, "ask": None, side: ohlc}
    return BarUpdate(epic, resolution, bar_type, t, sides["bid"], sides["ask"], "stream", final)


_PRICE_NAMES = ("openPrice", "highPrice", "lowPrice", "closePrice")


def _rest_side(prices: list[Any], side: str) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    values = tuple(p[side] for p in prices)
    # the common case, checked cheaply: four positive finite Decimals from the wire
    if all(type(v) is Decimal and v.is_finite() and v > 0 for v in values):
        return values  # type: ignore[return-value]
    return tuple(  # type: ignore[return-value]
        _price(v, f"{name} {side}")
        for v, name in zip(values, ("open", "high", "low", "close"), strict=True)
    )


def from_rest(epic: str, resolution: str, row: dict[str, Any]) -> BarUpdate:
    """A GET /prices row (Decimal floats) → a final two-sided update with volume."""
    try:
        t = datetime.fromisoformat(row["snapshotTimeUTC"]).replace(tzinfo=UTC)
        prices = [row[name] for name in _PRICE_NAMES]
        sides = {side: _rest_side(prices, side) for side in SIDES}
    except (KeyError, TypeError, ValueError) as exc:
        raise BarError(f"price row not understood: {exc}") from None
    for side, ohlc in sides.items():
        _check(ohlc, epic, resolution, t.isoformat, side)
    volume = row.get("lastTradedVolume")
    if not isinstance(volume, int | Decimal) or isinstance(volume, bool):
        volume = None
    return BarUpdate(
        epic, resolution, "classic", t, sides["bid"], sides["ask"], "rest", True,
        None if volume is None else int(volume),
    )  # fmt: skip


def _values(update: BarUpdate) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for side in SIDES:
        ohlc = getattr(update, side)
        if ohlc is not None:
            out.update({f"{side}_{k}": v for k, v in zip("ohlc", ohlc, strict=True)})
    return out


def store_updates(engine: Engine, updates: list[BarUpdate], seen: datetime) -> int:
    """Upsert updates in one transaction; returns how many bars changed value or finality.

    Existing rows are read once per (epic, resolution, type) and time range, new rows are
    inserted in one batch: a year of bars is a few statements, not one per bar."""
    merged: dict[tuple[str, str, str, datetime], BarUpdate] = {}
    for update in updates:  # later updates of one bar win, as they would one by one
        earlier = merged.get(update.key)
        merged[update.key] = update if earlier is None else _combine(earlier, update)
    changed = 0
    inserts: list[BarUpdate] = []
    with engine.begin() as conn:
        existing = _existing(conn, list(merged.values()))
        for key, update in merged.items():
            row = existing.get(key)
            if row is None:
                inserts.append(update)
                continue
            new = _changes(row, update)
            if new:
                changed += 1
            new["last_seen"] = seen
            conn.execute(
                price_bars.update()
                .where(
                    price_bars.c.epic == update.epic, price_bars.c.resolution == update.resolution,
                    price_bars.c.bar_type == update.bar_type, price_bars.c.t == update.t,
                )
                .values(**new)
            )  # fmt: skip
        if inserts:
            _insert_new(conn, inserts, seen)
    return changed + len(inserts)


_INSERT_COLUMNS = tuple(price_bars.c.keys())


_Plan = tuple[str, tuple[Callable[[Any], Any] | None, ...]]
_plans: dict[tuple[str, str], _Plan] = {}  # per backend and paramstyle, not per engine


def _insert_plan(dialect: Dialect) -> _Plan:
    """The driver's INSERT statement for new bars and each column's bind processor on
    `dialect` (what SQLAlchemy itself applies: UTC text on SQLite, the money check)."""
    key = (dialect.name, dialect.paramstyle)
    plan = _plans.get(key)
    if plan is None:
        plan = _plans[key] = _build_insert_plan(dialect)
    return plan


def _build_insert_plan(dialect: Dialect) -> _Plan:
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    names = ", ".join(dialect.identifier_preparer.quote(c) for c in _INSERT_COLUMNS)
    table = dialect.identifier_preparer.format_table(price_bars)
    sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join([marker] * len(_INSERT_COLUMNS))})"  # noqa: S608 - names from the table's own metadata
    processors = tuple(
        price_bars.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        for name in _INSERT_COLUMNS
    )
    return sql, processors


def _new_bar_column(name: str, bars: list[BarUpdate], seen: datetime) -> list[Any]:
    """One column of new bars' rows: a first revision, seen first and last at `seen`."""
    if name == "revision":
        return [1] * len(bars)
    if name in ("first_seen", "last_seen"):
        return [seen] * len(bars)
    if name in FIELDS:
        side, field = name.split("_")
        at = "ohlc".index(field)
        return [None if (v := getattr(b, side)) is None else v[at] for b in bars]
    return [getattr(b, name) for b in bars]


def _insert_new(conn: Connection, bars: list[BarUpdate], seen: datetime) -> None:
    """Insert bars that are not stored yet in one driver-level `executemany`: the values go
    through the same bind processors as SQLAlchemy's own insert, without its per-row work."""
    sql, processors = _insert_plan(conn.dialect)
    columns: list[list[Any]] = []
    for name, process in zip(_INSERT_COLUMNS, processors, strict=True):
        values = _new_bar_column(name, bars, seen)
        if process is not None:
            # Prices repeat from bar to bar and the seen stamps are one value: each distinct
            # value is processed once (equal values process alike: 1.10 and 1.1 store as 1.1).
            done: dict[Any, Any] = {}
            values = [
                None if v is None else done[v] if v in done else done.setdefault(v, process(v))
                for v in values
            ]
        columns.append(values)
    conn.exec_driver_sql(sql, list(zip(*columns, strict=True)))


def _combine(earlier: BarUpdate, later: BarUpdate) -> BarUpdate:
    if earlier.source == "rest" and later.source == "stream":
        return earlier
    return BarUpdate(
        later.epic, later.resolution, later.bar_type, later.t,
        later.bid if later.bid is not None else earlier.bid,
        later.ask if later.ask is not None else earlier.ask,
        later.source, later.final or (earlier.final and earlier.source == later.source),
        later.volume if later.volume is not None else earlier.volume,
    )  # fmt: skip


def _existing(conn: Any, updates: list[BarUpdate]) -> dict[tuple, dict[str, Any]]:
    groups: dict[tuple[str, str, str], list[datetime]] = {}
    for u in updates:
        groups.setdefault((u.epic, u.resolution, u.bar_type), []).append(u.t)
    found: dict[tuple, dict[str, Any]] = {}
    for (epic, resolution, bar_type), times in groups.items():
        rows = conn.execute(
            select(price_bars).where(
                price_bars.c.epic == epic, price_bars.c.resolution == resolution,
                price_bars.c.bar_type == bar_type, price_bars.c.t >= min(times),
                price_bars.c.t <= max(times),
            )
        ).mappings()  # fmt: skip
        wanted = set(times)
        for row in rows:
            if row["t"] in wanted:
                found[(epic, resolution, bar_type, row["t"])] = dict(row)
    return found


def _changes(row: dict[str, Any], update: BarUpdate) -> dict[str, Any]:
    """The column changes `update` makes to a stored `row` (REST supersedes the stream)."""
    if row["source"] == "rest" and update.source == "stream":
        return {}
    new: dict[str, Any] = {k: v for k, v in _values(update).items() if row[k] != v}
    if new:
        new["revision"] = row["revision"] + 1
    if update.source == "rest" and row["source"] != "rest":
        new["source"] = "rest"
    if update.volume is not None and row["volume"] != update.volume:
        new["volume"] = update.volume
    if update.final and not row["final"]:
        new["final"] = True
    return new


def record_coverage(
    engine: Engine, epic: str, resolution: str, window: Window, recorded_at: datetime
) -> None:
    with engine.begin() as conn:
        conn.execute(
            price_coverage.insert().values(
                epic=epic, resolution=resolution, bar_type="classic", start=window.start,
                end=window.end, recorded_at=recorded_at,
            )
        )  # fmt: skip


def covered_windows(engine: Engine, epic: str, resolution: str, within: Window) -> list[Window]:
    """REST-covered windows and the spans of final bars, merged (the bar store's coverage)."""
    step = timedelta(seconds=RESOLUTIONS[resolution])
    with engine.connect() as conn:
        rest = conn.execute(
            select(price_coverage.c.start, price_coverage.c.end).where(
                price_coverage.c.epic == epic, price_coverage.c.resolution == resolution,
                price_coverage.c.end > within.start, price_coverage.c.start < within.end,
            )
        ).all()  # fmt: skip
        finals = conn.execute(
            select(price_bars.c.t).where(
                price_bars.c.epic == epic, price_bars.c.resolution == resolution,
                price_bars.c.bar_type == "classic", price_bars.c.final.is_(True),
                price_bars.c.t >= within.start - step, price_bars.c.t < within.end,
                price_bars.c.bid_o.is_not(None), price_bars.c.ask_o.is_not(None),
            )
        ).all()  # fmt: skip
    windows = [Window(a, b) for a, b in rest] + [Window(t, t + step) for (t,) in finals]
    return merge_windows(windows)


def bar_gaps(engine: Engine, epic: str, resolution: str, wanted: Window) -> list[Window]:
    """The parts of `wanted` (bar open times) with neither a final bar nor a REST answer."""
    return coverage_gaps(wanted, covered_windows(engine, epic, resolution, wanted))


def read_bars(
    engine: Engine, epic: str, resolution: str, window: Window, bar_type: str = "classic"
) -> list[dict[str, Any]]:
    """Stored bars opening in `window`, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(price_bars).where(
                price_bars.c.epic == epic, price_bars.c.resolution == resolution,
                price_bars.c.bar_type == bar_type, price_bars.c.t >= window.start,
                price_bars.c.t < window.end,
            ).order_by(price_bars.c.t)
        ).mappings().all()  # fmt: skip
    return [dict(r) for r in rows]


def heikin_ashi(
    rows: list[dict[str, Any]], previous: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Heikin-ashi bars derived from consecutive classic bars (oldest first), per price type:
    close = (o + h + l + c) / 4; open = the midpoint of the previous classic bar's open and close
    (the bar's own open for the first bar when `previous` is None); high / low = the extremes of
    the classic high / low and the heikin-ashi open and close. Exact: Decimal division by 2 and 4
    terminates. The same definition as the simulator's heikin-ashi stream."""
    out = []
    before = previous
    for row in rows:
        derived = dict(row)
        derived["bar_type"] = "heikin-ashi"
        for side in SIDES:
            o, h, l, c = (row[f"{side}_{k}"] for k in "ohlc")  # noqa: E741
            if o is None:
                continue
            base = before if before is not None and before[f"{side}_o"] is not None else row
            ha_close = (o + h + l + c) / 4
            ha_open = (base[f"{side}_o"] + base[f"{side}_c"]) / 2
            derived.update({
                f"{side}_o": ha_open, f"{side}_c": ha_close,
                f"{side}_h": max(h, ha_open, ha_close), f"{side}_l": min(l, ha_open, ha_close),
            })  # fmt: skip
        out.append(derived)
        before = row
    return out


def read_heikin_ashi(engine: Engine, epic: str, resolution: str, window: Window) -> list[dict]:
    """Heikin-ashi bars of `window`, derived from the stored classic bars (and the one before)."""
    rows = read_bars(engine, epic, resolution, window)
    with engine.connect() as conn:
        previous = conn.execute(
            select(price_bars).where(
                price_bars.c.epic == epic, price_bars.c.resolution == resolution,
                price_bars.c.bar_type == "classic", price_bars.c.t < window.start,
            ).order_by(price_bars.c.t.desc()).limit(1)
        ).mappings().first()  # fmt: skip
    return heikin_ashi(rows, None if previous is None else dict(previous))


def bar_json(row: dict[str, Any]) -> dict[str, Any]:
    """A stored bar as `ledger-etl prices bars --format json` and the read service give it:
    exact decimal strings, `t` the UTC open time."""

    def side(name: str) -> dict[str, str | None]:
        return {k: None if row[f"{name}_{k}"] is None else str(row[f"{name}_{k}"]) for k in "ohlc"}

    return {
        "epic": row["epic"], "resolution": row["resolution"],
        "t": row["t"].astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "bid": side("bid"), "ask": side("ask"), "volume": row["volume"], "source": row["source"],
        "final": row["final"], "revision": row["revision"],
    }  # fmt: skip
