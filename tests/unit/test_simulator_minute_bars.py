"""The simulator's vectorised day of minutes equals its scalar MINUTE bars exactly, and every
longer bar is the aggregate of its minutes (so derived bars can equal the broker's)."""

from __future__ import annotations

import random

import pytest

from ledger_etl.simulator.catalog import MarketData
from ledger_etl.simulator.minute_bars import compute_day
from ledger_etl.simulator.prices import DAY, RESOLUTIONS, align_down

NOW = 1_768_478_400  # 2026-01-15T12:00Z


@pytest.mark.parametrize("epic", ["GOLD", "BTCUSD", "US500", "EURUSD"])
def test_day_of_minutes_equals_scalar_bars(epic: str) -> None:
    series = MarketData(11).series(epic)
    rng = random.Random(epic)
    for day in (NOW - NOW % DAY, (19_000 + rng.randrange(2_000)) * DAY):
        minutes = compute_day(series, day)
        for i in range(1_440):
            bar = series.sampled_bar(day + 60 * i, 60, day + DAY)
            got = (minutes.open[i], minutes.high[i], minutes.low[i], minutes.close[i],
                   minutes.volume[i])  # fmt: skip
            if bar is None:
                assert minutes.volume[i] == 0 and minutes.after[i] != i
            else:
                assert got == (bar.open, bar.high, bar.low, bar.close, bar.volume), (day, i)


@pytest.mark.parametrize("resolution", ["MINUTE_5", "HOUR", "HOUR_4", "DAY", "WEEK"])
def test_longer_bars_aggregate_their_minutes(resolution: str) -> None:
    series = MarketData(11).series("GOLD")  # closed 22:00-23:05 daily and at weekends
    seconds = RESOLUTIONS[resolution]
    for start in (align_down(NOW - 2 * seconds, seconds), align_down(NOW, seconds)):
        bar = series.bar(start, seconds, NOW)  # the second one is still forming at NOW
        parts = [series.sampled_bar(t, 60, NOW) for t in range(start, NOW + 1, 60)
                 if t < start + seconds]  # fmt: skip
        parts = [p for p in parts if p is not None]
        assert bar is not None and parts
        assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (
            parts[0].open, max(p.high for p in parts), min(p.low for p in parts),
            parts[-1].close, sum(p.volume for p in parts),
        )  # fmt: skip
