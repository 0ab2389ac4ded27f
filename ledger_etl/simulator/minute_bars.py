"""The closed MINUTE bars of one UTC day of one price path, computed at once and cached.

Every bar longer than a minute is the aggregate of its closed minutes (open of the first, close of
the last, the extremes of highs and lows, the sum of volumes), so a bar derived from MINUTE bars
equals the simulator's own bar of that resolution, as a broker's would. Computing a day of minutes
in one vectorised pass and keeping it makes a year of /prices cheap: each minute is computed once,
not once per request and resolution.

The vectorised path gives exactly what `PriceSeries.bar(start, 60, now)` gives for a closed minute,
sample for sample: the same integer mixing (uint64 wrap-around is the `& _M64` of the scalar code),
the same float operations in the same order, and `math.exp` and `round` per sample, so no
last-place difference of a vector `exp` can move a tick.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ledger_etl.simulator.prices import PriceSeries

DAY = 86_400
MINUTES = 1_440
# first second, the four interior samples of `PriceSeries.bar` for 60 s (k + 0.5) * 15, last second
SAMPLE_OFFSETS = np.array([0, 7, 22, 37, 52, 59], dtype=np.int64)
DAYS_KEPT = 48  # per price path: a WEEK bar needs 8 days, a long backfill walks days in order
_CLOSED_LOW = 1 << 62  # a closed minute's low: above every price, so min() skips it


def units(key: int, index: np.ndarray) -> np.ndarray:
    """`prices.unit(key, i)` for every i of `index` (non-negative int64)."""
    with np.errstate(over="ignore"):
        x = np.uint64(key) ^ (index.astype(np.uint64) * np.uint64(0xD1B54A32D192ED03))
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return x.astype(np.float64) / 18_446_744_073_709_551_616.0


def raw_mids(series: PriceSeries, times: np.ndarray) -> np.ndarray:
    """`series.raw_mid_ticks(t)` for every t of `times` (int64 epoch seconds), as int64."""
    total = np.zeros(times.shape, dtype=np.float64)
    if not times.size:
        return times.astype(np.int64)
    for period, amplitude, key, _cache in series._octaves:
        index, rest = np.divmod(times, period)
        lo = int(index.min())  # a day holds few distinct indices: mix each once, then gather
        table = 2.0 * units(key, np.arange(lo, int(index.max()) + 2, dtype=np.int64)) - 1.0
        first = table[index - lo]
        second = table[index - lo + 1]
        f = rest / period
        f = f * f * (3.0 - 2.0 * f)
        total += amplitude * (first + (second - first) * f)
    base = series._base_ticks
    scaled = base * np.exp(total)
    # A vector exp may differ from math.exp in the last place; that can move a tick only where
    # the value sits on a .5 boundary, so those few samples are redone exactly as the scalar
    # code does them (the margin is a thousand times any such difference).
    frac = scaled - np.floor(scaled)
    near = np.flatnonzero(np.abs(frac - 0.5) <= scaled * 1e-12 + 1e-12)
    ticks = np.rint(scaled)
    for k in near.tolist():
        ticks.flat[k] = round(base * math.exp(float(total.flat[k])))
    return np.maximum(series.half_spread_ticks + 1, ticks).astype(np.int64)


@dataclass(frozen=True)
class DayMinutes:
    """Minute i of the day opens at `start + 60 i`; a closed minute has open and close 0, high
    0, low `_CLOSED_LOW` and volume 0. `after[i]`: the first open minute at or after i (1440:
    none); `before[i]`: the last open minute before i (-1: none)."""

    start: int
    open: list[int]
    high: list[int]
    low: list[int]
    close: list[int]
    volume: list[int]
    after: list[int]
    before: list[int]
    arrays: dict[str, np.ndarray] = field(repr=False, compare=False)
    _bars: dict[int, list[tuple[int, int, int, int, int] | None]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def bars(self, seconds: int) -> list[tuple[int, int, int, int, int] | None]:
        """(open, high, low, close, volume) of every bar of `seconds` (dividing a day) in the
        day, None where the market was shut all through it; computed once per resolution."""
        found = self._bars.get(seconds)
        if found is not None:
            return found
        k = seconds // 60
        groups = MINUTES // k
        a = self.arrays
        firsts = a["after"][0:MINUTES:k]
        lasts = a["before"][k : MINUTES + 1 : k]
        bounds = np.arange(groups) * k
        has = firsts < bounds + k
        columns = (
            a["open"][np.minimum(firsts, MINUTES - 1)].tolist(),
            a["high"].reshape(groups, k).max(axis=1).tolist(),
            a["low"].reshape(groups, k).min(axis=1).tolist(),
            a["close"][np.maximum(lasts, 0)].tolist(),
            a["volume"].reshape(groups, k).sum(axis=1).tolist(),
        )
        built = [
            row if ok else None
            for ok, row in zip(has.tolist(), zip(*columns, strict=True), strict=True)
        ]
        self._bars[seconds] = built
        return built


def compute_day(series: PriceSeries, day_start: int) -> DayMinutes:
    is_open = np.zeros(MINUTES, dtype=bool)
    for a, b in series.hours.spans(day_start, day_start + DAY):
        is_open[(a - day_start) // 60 : (b - day_start + 59) // 60] = True
    opened = np.flatnonzero(is_open)
    starts = day_start + 60 * opened.astype(np.int64)
    mids = raw_mids(series, starts[:, None] + SAMPLE_OFFSETS[None, :])
    noise = 0.5 + units(series._volume_key ^ 60, starts)
    volumes = np.maximum(1, np.rint(series._volume_per_minute * 1.0 * noise)).astype(np.int64)
    columns = {
        "open": (mids[:, 0], 0), "high": (mids.max(axis=1), 0),
        "low": (mids.min(axis=1), _CLOSED_LOW), "close": (mids[:, -1], 0), "volume": (volumes, 0),
    }  # fmt: skip
    arrays = {}
    for name, (values, closed) in columns.items():
        full = np.full(MINUTES, closed, dtype=np.int64)
        full[opened] = values
        arrays[name] = full
    positions = np.arange(MINUTES + 1)
    marks = np.append(is_open, True)
    arrays["after"] = np.minimum.accumulate(np.where(marks, positions, MINUTES)[::-1])[::-1]
    arrays["before"] = np.maximum.accumulate(np.where(np.append(False, is_open), positions - 1, -1))
    lists = {name: values.tolist() for name, values in arrays.items()}
    return DayMinutes(day_start, **lists, arrays=arrays)


class MinuteCache:
    """The last `DAYS_KEPT` days of closed minutes of one price path."""

    def __init__(self, series: PriceSeries) -> None:
        self._series = series
        self._days: OrderedDict[int, DayMinutes] = OrderedDict()
        self._lock = threading.Lock()
        self._recent: DayMinutes | None = None  # consecutive bars mostly fall in one day

    def day(self, day_start: int) -> DayMinutes:
        recent = self._recent
        if recent is not None and recent.start == day_start:
            return recent
        self._recent = found = self._lookup(day_start)
        return found

    def _lookup(self, day_start: int) -> DayMinutes:
        with self._lock:
            found = self._days.get(day_start)
            if found is not None:
                self._days.move_to_end(day_start)
                return found
        computed = compute_day(self._series, day_start)
        with self._lock:
            self._days[day_start] = computed
            while len(self._days) > DAYS_KEPT:
                self._days.popitem(last=False)
        return computed

    def closed_bar(self, start: int, seconds: int) -> tuple[int, int, int, int, int] | None:
        """The whole bar of `seconds` (dividing a day) opening at `start`, as `aggregate`."""
        day_start = start - start % DAY
        return self.day(day_start).bars(seconds)[(start - day_start) // seconds]

    def aggregate(self, start: int, end: int) -> tuple[int, int, int, int, int] | None:
        """(open, high, low, close, volume) of the closed minutes opening in [start, end)
        (both whole minutes), or None if none of them was open."""
        first = last = None
        high, low, volume = 0, _CLOSED_LOW, 0
        t = start
        while t < end:
            day_start = t - t % DAY
            stop = min(end, day_start + DAY)
            minutes = self.day(day_start)
            i, j = (t - day_start) // 60, (stop - day_start) // 60
            if minutes.after[i] < j:
                if first is None:
                    first = minutes.open[minutes.after[i]]
                last = minutes.close[minutes.before[j]]
                high = max(high, max(minutes.high[i:j]))
                low = min(low, min(minutes.low[i:j]))
                volume += sum(minutes.volume[i:j])
            t = stop
        if first is None or last is None:
            return None
        return first, high, low, last, volume
