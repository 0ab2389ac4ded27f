"""Deterministic price paths, OHLC bars and the GET /prices endpoint.

A mid price is a pure function of (seed, epic, UTC second): no state and no dependence on when the
process started, so every run of a scenario sees the same quotes and the same bars. The path is
`base * exp(n(t))`, where `n` is a sum of value-noise octaves (periods from 30 days down to 30
seconds) whose amplitudes add up to the instrument's `band`. The price therefore stays within
`base * e^±band`, is always positive, moves slowly over weeks and wiggles within minutes.

Markets trade only inside their weekly opening hours; outside them the quote is frozen at the last
traded second and no bars exist. Prices are handled as integer ticks (units of 10^-decimals) and
only become Decimal or float at the edge, so rounding happens exactly once.
"""

from __future__ import annotations

import hashlib
import math
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ledger_etl.simulator.errors import ApiError
from ledger_etl.simulator.minute_bars import MinuteCache
from ledger_etl.simulator.wire import parse_request_datetime

DAY = 86_400
WEEK = 7 * DAY
MONDAY = 4 * DAY  # 1970-01-05T00:00Z, a Monday: opening hours and WEEK bars are aligned to it

RESOLUTIONS: dict[str, int] = {
    "MINUTE": 60,
    "MINUTE_5": 300,
    "MINUTE_15": 900,
    "MINUTE_30": 1_800,
    "HOUR": 3_600,
    "HOUR_4": 14_400,
    "DAY": DAY,
    "WEEK": WEEK,
}
DEFAULT_RESOLUTION = "MINUTE"
DEFAULT_MAX = 10
MAX_MAX = 1_000

# (period in seconds, share of the band); the shares add up to 1.
_OCTAVES = (
    (30 * DAY, 0.46),
    (7 * DAY, 0.28),
    (DAY, 0.12),
    (14_400, 0.06),
    (3_600, 0.04),
    (900, 0.02),
    (180, 0.012),
    (30, 0.008),
)
_MAX_SAMPLES = 16  # interior samples per bar, so a DAY or WEEK bar costs the same as a short one
_CACHE_LIMIT = 4_096
_M64 = (1 << 64) - 1
_DIGITS = re.compile(r"^\d{1,9}$")


def derive_key(*parts: object) -> int:
    """A stable 64-bit key for a tuple of labels (Python's own `hash` is salted per process)."""
    text = "\x1f".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def unit(key: int, index: int) -> float:
    """A uniform number in [0, 1) for (key, index): the splitmix64 finaliser."""
    x = (key ^ (index * 0xD1B54A32D192ED03)) & _M64
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return (x ^ (x >> 31)) / 18_446_744_073_709_551_616.0


def parse_session(text: str) -> tuple[int, int]:
    """`"23:05 - 00:00"` → minutes (1385, 1440); an end of 00:00 means midnight at the day's end."""
    start, end = (part.strip() for part in text.split("-"))
    a = int(start[:2]) * 60 + int(start[3:])
    b = int(end[:2]) * 60 + int(end[3:])
    return a, (b if b > a else b + 1_440)


class WeeklyHours:
    """The open intervals of a trading week (UTC), as seconds since Monday 00:00."""

    def __init__(self, days: Sequence[Sequence[str]]) -> None:
        raw = sorted(
            (d * DAY + a * 60, d * DAY + b * 60)
            for d, sessions in enumerate(days)
            for a, b in map(parse_session, sessions)
        )
        merged: list[tuple[int, int]] = []
        for a, b in raw:
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
            else:
                merged.append((a, b))
        self._intervals = tuple(merged)
        self._starts = tuple(a for a, _ in merged)
        self.always_open = merged == [(0, WEEK)]

    def is_open(self, t: int) -> bool:
        if self.always_open:
            return True
        offset = (t - MONDAY) % WEEK
        i = bisect_right(self._starts, offset) - 1
        return i >= 0 and offset < self._intervals[i][1]

    def spans(self, start: int, end: int) -> list[tuple[int, int]]:
        """The open parts of `[start, end)`, adjacent parts merged, in time order."""
        if start >= end or not self._intervals:
            return []
        if self.always_open:
            return [(start, end)]
        out: list[tuple[int, int]] = []
        week = MONDAY + (start - MONDAY) // WEEK * WEEK
        while week < end:
            for a, b in self._intervals:
                lo, hi = max(start, week + a), min(end, week + b)
                if lo < hi:
                    if out and out[-1][1] == lo:
                        out[-1] = (out[-1][0], hi)
                    else:
                        out.append((lo, hi))
            week += WEEK
        return out

    def next_open(self, t: int) -> int | None:
        """The first open second at or after `t`."""
        found = self.spans(t, t + WEEK)
        return found[0][0] if found else None

    def prev_open(self, t: int) -> int | None:
        """The last open second strictly before `t`."""
        found = self.spans(t - WEEK, t)
        return found[-1][1] - 1 if found else None


@dataclass(frozen=True)
class Bar:
    """One OHLC bar in mid ticks, stamped at its open time (epoch seconds, UTC)."""

    start: int
    open: int
    high: int
    low: int
    close: int
    volume: int


@dataclass(frozen=True)
class DayStats:
    """What a market snapshot shows: the quote, today's range and the change on yesterday."""

    quote_time: int  # the second the quote was taken: now, or the last open second if closed
    is_open: bool
    mid: int
    high: int
    low: int
    previous_close: int


def epoch_second(instant: datetime) -> int:
    """Whole UTC seconds since the epoch; a naive datetime is taken to be UTC."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return math.floor(instant.timestamp())


def align_down(t: int, seconds: int) -> int:
    return t - (t - MONDAY) % seconds


def align_up(t: int, seconds: int) -> int:
    return align_down(t + seconds - 1, seconds)


class PriceSeries:
    """The price path of one instrument for one seed."""

    def __init__(
        self,
        seed: int,
        epic: str,
        *,
        base: Decimal,
        decimals: int,
        spread: Decimal,
        band: float,
        volume_per_minute: int,
        hours: WeeklyHours,
    ) -> None:
        self.decimals = decimals
        self.scale = 10**decimals
        spread_ticks = spread * self.scale
        if spread_ticks != spread_ticks.to_integral_value() or spread_ticks < 1:
            raise ValueError(f"{epic}: spread {spread} is not a whole number of ticks")
        self.spread_ticks = int(spread_ticks)
        self.half_spread_ticks = self.spread_ticks // 2
        self.hours = hours
        self._base_ticks = float(base) * self.scale
        self._volume_per_minute = volume_per_minute
        self._volume_key = derive_key(seed, epic, "volume")
        self._octaves = tuple(
            (period, band * share, derive_key(seed, epic, "octave", period), {})
            for period, share in _OCTAVES
        )
        self._minutes = MinuteCache(self)

    def raw_mid_ticks(self, t: int) -> int:
        """The path at second `t`, ignoring opening hours."""
        total = 0.0
        for period, amplitude, key, cache in self._octaves:
            index, rest = divmod(t, period)
            pair = cache.get(index)
            if pair is None:
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                pair = cache[index] = (
                    2.0 * unit(key, index) - 1.0,
                    2.0 * unit(key, index + 1) - 1.0,
                )
            f = rest / period
            f = f * f * (3.0 - 2.0 * f)
            total += amplitude * (pair[0] + (pair[1] - pair[0]) * f)
        return max(self.half_spread_ticks + 1, round(self._base_ticks * math.exp(total)))

    def quote_time(self, t: int) -> int:
        if self.hours.is_open(t):
            return t
        last = self.hours.prev_open(t)
        return t if last is None else last

    def mid_ticks(self, t: int) -> int:
        """The quoted mid at second `t`: frozen at the last open second while the market is shut."""
        return self.raw_mid_ticks(self.quote_time(t))

    def bid_ticks(self, mid: int) -> int:
        return mid - self.half_spread_ticks

    def ask_ticks(self, mid: int) -> int:
        return mid - self.half_spread_ticks + self.spread_ticks

    def to_decimal(self, ticks: int) -> Decimal:
        return Decimal(ticks).scaleb(-self.decimals)

    def to_float(self, ticks: int) -> float:
        """Exactly `float(to_decimal(ticks))`: one correctly rounded division of two exact ints."""
        return ticks / self.scale

    def bar(self, start: int, seconds: int, now: int) -> Bar | None:
        """The bar opening at `start`, cut at `now` if still in progress; None if never open.

        A bar of whole minutes is the aggregate of its minutes (see `minute_bars`): the closed
        ones from the day cache, the one in progress sampled as it stands at `now`."""
        if start % 60 or seconds % 60:
            return self.sampled_bar(start, seconds, now)
        end = min(start + seconds, now + 1)
        if end == start + seconds and DAY % seconds == 0:  # closed: the day's table has it
            closed = self._minutes.closed_bar(start, seconds)
            return None if closed is None else Bar(start, *closed)
        whole = start + max(0, end - start) // 60 * 60
        parts = []
        if whole > start:
            parts.append(self._minutes.aggregate(start, whole))
        if whole < end:
            forming = self.sampled_bar(whole, 60, now)
            if forming is not None:
                parts.append((forming.open, forming.high, forming.low, forming.close,
                              forming.volume))  # fmt: skip
        found = [p for p in parts if p is not None]
        if not found:
            return None
        return Bar(
            start, found[0][0], max(p[1] for p in found), min(p[2] for p in found),
            found[-1][3], sum(p[4] for p in found),
        )  # fmt: skip

    def sampled_bar(self, start: int, seconds: int, now: int) -> Bar | None:
        """The bar at `start` from its first and last open second and up to `_MAX_SAMPLES`
        interior samples: exactly a MINUTE bar; a bar of a minute's parts, or in progress."""
        spans = self.hours.spans(start, min(start + seconds, now + 1))
        if not spans:
            return None
        first = self.raw_mid_ticks(spans[0][0])
        last = self.raw_mid_ticks(spans[-1][1] - 1)
        high, low = max(first, last), min(first, last)
        samples = max(1, min(_MAX_SAMPLES, seconds // 15))
        step = seconds / samples
        j = 0
        for k in range(samples):
            t = start + int((k + 0.5) * step)
            while j < len(spans) and spans[j][1] <= t:
                j += 1
            if j == len(spans):
                break
            if t >= spans[j][0]:
                m = self.raw_mid_ticks(t)
                high, low = max(high, m), min(low, m)
        open_minutes = sum(b - a for a, b in spans) / 60
        noise = 0.5 + unit(self._volume_key ^ seconds, start)
        volume = max(1, round(self._volume_per_minute * open_minutes**0.85 * noise))
        return Bar(start, first, high, low, last, volume)

    def last_bar(self, start: int, seconds: int, now: int, *, tries: int = 60) -> Bar | None:
        """The bar at `start`, or the nearest earlier one that has prices."""
        for _ in range(tries):
            found = self.bar(start, seconds, now)
            if found is not None:
                return found
            earlier = self.hours.prev_open(start)
            if earlier is None:
                return None
            start = min(start - seconds, align_down(earlier, seconds))
        return None

    def day_stats(self, now: int) -> DayStats:
        quote_time = self.quote_time(now)
        today = self.last_bar(align_down(quote_time, DAY), DAY, quote_time)
        if today is None:  # a market with no opening hours at all
            mid = self.raw_mid_ticks(quote_time)
            return DayStats(quote_time, False, mid, mid, mid, mid)
        previous = self.last_bar(today.start - DAY, DAY, quote_time)
        previous_close = today.open if previous is None else previous.close
        return DayStats(
            quote_time, quote_time == now, today.close, today.high, today.low, previous_close
        )


@dataclass(frozen=True)
class PriceQuery:
    """A validated GET /prices request; times are epoch seconds, UTC."""

    resolution: str
    seconds: int
    max: int
    start: int | None
    end: int | None


def parse_price_query(
    resolution: str | None, max_: str | None, from_: str | None, to: str | None, now: int
) -> PriceQuery:
    """Validate the query as the API does, raising ApiError(400, ...) on the first problem."""
    name = DEFAULT_RESOLUTION if resolution is None else resolution
    if name not in RESOLUTIONS:
        raise ApiError(400, "error.invalid.resolution")
    count = DEFAULT_MAX
    if max_ is not None:
        # The vendor documents the 1..1000 range but no code for breaking it; this code is inferred.
        if not _DIGITS.match(max_) or not 1 <= int(max_) <= MAX_MAX:
            raise ApiError(400, "error.invalid.max")
        count = int(max_)
    start = end = None
    if from_ is not None:
        parsed = parse_request_datetime(from_)
        if parsed is None:
            raise ApiError(400, "error.invalid.from")
        start = int(parsed.timestamp())
    if to is not None:
        parsed = parse_request_datetime(to)
        if parsed is None:
            raise ApiError(400, "error.invalid.to")  # inferred by analogy with `from`
        end = int(parsed.timestamp())
    seconds = RESOLUTIONS[name]
    if end is not None and end > now:
        raise ApiError(400, "error.invalid.daterange")
    if start is not None and end is not None:
        if start > end:
            raise ApiError(400, "error.invalid.daterange")  # inferred: an inverted window
        if end - start >= count * seconds:
            raise ApiError(400, "error.invalid.max.daterange")
    return PriceQuery(name, seconds, count, start, end)


def select_bars(series: PriceSeries, query: PriceQuery, now: int) -> list[Bar]:
    """Bars whose open time lies in the window (both ends inclusive), oldest first, at most max."""
    seconds, bars = query.seconds, []
    if query.start is not None:
        last = now if query.end is None else min(query.end, now)
        start = align_up(query.start, seconds)
        while start <= last and len(bars) < query.max:
            found = series.bar(start, seconds, now)
            if found is not None:
                bars.append(found)
                start += seconds
                continue
            following = series.hours.next_open(start)
            if following is None:
                break
            start = max(start + seconds, align_down(following, seconds))
        return bars
    start = align_down(now if query.end is None else min(query.end, now), seconds)
    while len(bars) < query.max:
        found = series.bar(start, seconds, now)
        if found is not None:
            bars.append(found)
            start -= seconds
            continue
        earlier = series.hours.prev_open(start)
        if earlier is None:
            break
        start = min(start - seconds, align_down(earlier, seconds))
    bars.reverse()
    return bars


_DAY_TEXT: dict[int, str] = {}


def _stamp(t: int) -> str:
    """`format_request_datetime` of epoch second `t`, without a datetime per call (a year of
    bars is a hundred thousand of them)."""
    day, second = divmod(t, DAY)
    prefix = _DAY_TEXT.get(day)
    if prefix is None:
        if len(_DAY_TEXT) > 10_000:
            _DAY_TEXT.clear()
        prefix = _DAY_TEXT[day] = datetime.fromtimestamp(day * DAY, UTC).strftime("%Y-%m-%dT")
    hour, rest = divmod(second, 3_600)
    return f"{prefix}{hour:02d}:{rest // 60:02d}:{rest % 60:02d}"


def render_bar(series: PriceSeries, bar: Bar, offset_hours: int) -> dict[str, Any]:
    low, spread, scale = series.half_spread_ticks, series.spread_ticks, series.scale

    def side(mid: int) -> dict[str, float]:  # exactly to_float(bid_ticks / ask_ticks)
        return {"bid": (mid - low) / scale, "ask": (mid - low + spread) / scale}

    return {
        "snapshotTime": _stamp(bar.start + offset_hours * 3_600),
        "snapshotTimeUTC": _stamp(bar.start),
        "openPrice": side(bar.open),
        "closePrice": side(bar.close),
        "highPrice": side(bar.high),
        "lowPrice": side(bar.low),
        "lastTradedVolume": bar.volume,
    }


def price_history(
    series: PriceSeries,
    instrument_type: str,
    resolution: str | None,
    max_: str | None,
    from_: str | None,
    to: str | None,
    now: datetime,
    offset_hours: int = 2,
) -> dict[str, Any]:
    """The body of GET /prices/{epic}."""
    now_s = epoch_second(now)
    query = parse_price_query(resolution, max_, from_, to, now_s)
    bars = select_bars(series, query, now_s)
    if not bars:
        raise ApiError(404, "error.prices.not-found")
    return {
        "prices": [render_bar(series, bar, offset_hours) for bar in bars],
        "instrumentType": instrument_type,
    }
