"""The simulator's clock: real UTC time plus an adjustable offset, or frozen.

Everything time-dependent in the simulator (session idle expiry, rate limits, what history is
visible "now", late arrival) reads this clock, so tests can jump ahead instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class Clock:
    """UTC wall clock = real time + offset; `freeze()` pins it to one instant."""

    def __init__(self, start: datetime | None = None, *, frozen: bool = False) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen_at: float | None = None
        if start is not None:
            self.set(start)
        if frozen:
            self.freeze()

    def timestamp(self) -> float:
        """Seconds since the epoch, UTC."""
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return time.time() + self._offset

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
                self._offset = target - time.time()

    def freeze(self) -> None:
        with self._lock:
            if self._frozen_at is None:
                self._frozen_at = time.time() + self._offset

    def unfreeze(self) -> None:
        with self._lock:
            if self._frozen_at is not None:
                self._offset = self._frozen_at - time.time()
                self._frozen_at = None

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def describe(self) -> dict[str, object]:
        return {"now": self.now().isoformat(), "frozen": self.frozen}


def utc_day_start(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


ONE_DAY = timedelta(days=1)
