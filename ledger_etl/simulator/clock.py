"""The simulator's clock: real UTC time plus an adjustable offset, or frozen, or accelerated.

Everything time-dependent in the simulator (session idle expiry, rate limits, what history is
visible "now", late arrival, the price stream) reads this clock, so tests can jump ahead instead
of sleeping. A `rate` above 1 runs simulated time faster than real time (60: a simulated hour per
real minute), so hours of streaming fit in a test.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class Clock:
    """UTC wall clock = real time + offset; `freeze()` pins it to one instant."""

    def __init__(
        self, start: datetime | None = None, *, frozen: bool = False, rate: float = 1.0
    ) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen_at: float | None = None
        # Simulated time = _offset + real time * _rate; re-anchored whenever the rate changes.
        self._rate = 1.0
        if rate != 1.0:
            self.set_rate(rate)
        if start is not None:
            self.set(start)
        if frozen:
            self.freeze()

    def timestamp(self) -> float:
        """Seconds since the epoch, UTC."""
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return time.time() * self._rate + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), tz=UTC)

    def advance(self, seconds: float) -> None:
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += seconds
            else:
                self._offset += seconds

    def set(self, instant: datetime) -> None:
        if instant.tzinfo is None:
            raise ValueError("clock instants must be timezone-aware (UTC)")
        target = instant.timestamp()
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at = target
            else:
                self._offset = target - time.time() * self._rate

    @property
    def rate(self) -> float:
        return self._rate

    def set_rate(self, rate: float) -> None:
        """Run simulated time `rate` times as fast as real time, from the current instant on."""
        if not rate > 0:
            raise ValueError("the clock rate must be positive")
        with self._lock:
            real = time.time()
            current = real * self._rate + self._offset
            self._rate = float(rate)
            self._offset = current - real * self._rate

    def freeze(self) -> None:
        with self._lock:
            if self._frozen_at is None:
                self._frozen_at = time.time() * self._rate + self._offset

    def unfreeze(self) -> None:
        with self._lock:
            if self._frozen_at is not None:
                self._offset = self._frozen_at - time.time() * self._rate
                self._frozen_at = None

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def describe(self) -> dict[str, object]:
        return {"now": self.now().isoformat(), "frozen": self.frozen, "rate": self._rate}


def utc_day_start(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


ONE_DAY = timedelta(days=1)
