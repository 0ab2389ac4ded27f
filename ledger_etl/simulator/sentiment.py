"""Client sentiment that moves with simulated time, deterministically.

The live API publishes the share of clients long and short per market and revises it through the
day; the body carries no timestamp. Here the long share is a pure function of (seed, market,
minute): a per-market base level plus three octaves of value noise (days, hours, half-hours),
held constant within each UTC minute. The same scenario therefore shows the same sentiment at the
same simulated instant, and a poller sees it change only when simulated time moves on.
"""

from __future__ import annotations

from decimal import Decimal

from ledger_etl.simulator.prices import derive_key, unit

SENTIMENT_STEP_SECONDS = 60  # the value holds for a whole UTC minute
# (period in seconds, amplitude as a share of 100 %)
_OCTAVES = ((3 * 86_400, 0.18), (6 * 3_600, 0.09), (1_800, 0.03))
_LOW, _HIGH = 0.05, 0.95


def _smooth_noise(key: int, t: int, period: int) -> float:
    """Value noise in [-1, 1] with smoothstep interpolation between knots `period` apart."""
    index, rest = divmod(t, period)
    a, b = 2.0 * unit(key, index) - 1.0, 2.0 * unit(key, index + 1) - 1.0
    f = rest / period
    f = f * f * (3.0 - 2.0 * f)
    return a + (b - a) * f


def long_share(seed: int, epic: str, epoch_second: int) -> Decimal:
    """The long percentage of `epic` at `epoch_second`, two decimals, within [5, 95]."""
    t = epoch_second - epoch_second % SENTIMENT_STEP_SECONDS
    base = 0.2 + 0.6 * unit(derive_key(seed, epic, "sentiment"), 0)
    level = base + sum(
        amplitude * _smooth_noise(derive_key(seed, epic, "sentiment", period), t, period)
        for period, amplitude in _OCTAVES
    )
    level = min(_HIGH, max(_LOW, level))
    return Decimal(round(level * 10_000)).scaleb(-2)


def sentiment_item(seed: int, epic: str, epoch_second: int) -> dict[str, object]:
    """One element of `clientSentiments`; long + short is exactly 100."""
    long = long_share(seed, epic, epoch_second)
    return {
        "marketId": epic,
        "longPositionPercentage": float(long),
        "shortPositionPercentage": float(Decimal(100) - long),
    }
