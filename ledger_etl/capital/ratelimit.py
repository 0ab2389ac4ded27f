"""Client-side request pacing (shared per API key within the process) and retry backoff.

Capital.com allows 10 requests per second per user and one `POST /session` per second per API
key, and it answers excess with 429. Pacing on our side keeps concurrent window fetches just
under the limit instead of bouncing off it; backoff spaces the retries when it happens anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# A scheduled start counts as reached when the clock is this close to it: sleep() may wake a
# hair early with floating-point clocks, and waiting a microsecond more changes nothing.
_EPSILON = 1e-6
WINDOW_SECONDS = 1.0
# The server counts arrivals, not our starts: two requests started exactly one second apart can
# arrive less than a second apart (thread wake-up, connection pool, network). Counting starts
# over a slightly longer window keeps a full-speed client out of the server's 429s for ~5% of
# throughput; one 429 costs a whole second of everybody's pause.
SERVER_WINDOW_GUARD = 0.05

# A 429 despite the guard means arrivals jitter more than it allows for: each one widens the
# window by a step, up to a ceiling, and the widening wears off again while no 429 comes.
GUARD_STEP = 0.05
GUARD_CEILING = 0.5
GUARD_RECOVERY_PER_S = 0.005

# How often an asyncio waiter looks again while a thread holds the turn.
_ASYNC_POLL = 0.005


class RateLimiter:
    """At most `rate` request starts per second, for every thread that shares the instance.

    Two rules are combined:
    - spacing: a start is no earlier than the previous start + 1/rate, which spreads requests
      evenly instead of bursting;
    - a sliding window: at most `floor(rate)` starts in any interval of 1 second plus `guard`.
      Spacing alone would allow three starts within a second at rate 2.5; the window makes the
      bound exact, and `guard` keeps it so after arrival jitter (see SERVER_WINDOW_GUARD).

    Waiting threads queue on one lock, so starts happen in the order slots were claimed.
    """

    def __init__(
        self,
        rate: float,
        *,
        guard: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not (guard >= 0 and math.isfinite(guard)):
            raise ValueError(f"guard must be a non-negative number of seconds, got {guard}")
        self._guard = float(guard)
        self._widened = 0.0  # extra guard learned from 429s, as of `_widened_at`
        self._widened_at = 0.0
        self._monotonic = monotonic
        self._sleep = sleep
        self._state = threading.Lock()  # guards the fields below; never held while sleeping
        self._turn = threading.Lock()  # one waiter at a time, held while sleeping
        self._starts: deque[float] = deque()
        self._next_start = -math.inf
        self._paused_until = -math.inf
        self._rate = 0.0
        self._slots = 1
        self.set_rate(rate)

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def guard(self) -> float:
        return self._guard

    def set_rate(self, rate: float) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number of requests per second, got {rate}")
        with self._state:
            self._rate = float(rate)
            self._slots = max(1, math.floor(rate))

    def _extra_guard_locked(self, now: float) -> float:
        if not self._widened:
            return 0.0
        return max(0.0, self._widened - (now - self._widened_at) * GUARD_RECOVERY_PER_S)

    def current_guard(self) -> float:
        """The guard in force now: the configured one plus what 429s have added."""
        with self._state:
            return self._guard + self._extra_guard_locked(self._monotonic())

    def _earliest_locked(self, now: float) -> float:
        earliest = max(self._next_start, self._paused_until)
        while len(self._starts) > self._slots:
            self._starts.popleft()
        if len(self._starts) == self._slots:
            # The oldest of the last `slots` stamps (a restamped start may be later than the
            # next one, see `sent`).
            window = WINDOW_SECONDS + self._guard + self._extra_guard_locked(now)
            earliest = max(earliest, min(self._starts) + window)
        return earliest

    def _claim(self) -> tuple[float | None, float]:
        """(start, 0) when a request may start now (the slot is taken), else (None, wait)."""
        with self._state:
            now = self._monotonic()
            earliest = self._earliest_locked(now)
            if now + _EPSILON >= earliest:
                start = max(now, earliest)
                self._starts.append(start)
                self._next_start = start + 1.0 / self._rate
                return start, 0.0
            return None, earliest - now

    def acquire(self) -> float:
        """Block until a request may start; return that start on the `monotonic` clock."""
        with self._turn:
            while True:
                start, delay = self._claim()
                if start is not None:
                    return start
                self._sleep(delay)

    def sent(self, start: float) -> None:
        """The request that `acquire` let start at `start` is leaving now: it is counted from
        now on. The server counts arrivals; a thread that waited for the CPU or the GIL between
        its start and its first byte would otherwise arrive late, and the request ten starts
        later, sent at once, would arrive less than a second after it."""
        with self._state:
            now = self._monotonic()
            for i in range(len(self._starts) - 1, -1, -1):
                if self._starts[i] == start:
                    if now > start:
                        self._starts[i] = now
                    return

    async def acquire_async(self) -> float:
        """`acquire` for asyncio tasks: waits without blocking the event loop, and shares the
        same slots with threads (a WebSocket client and REST fetches of one API key, say)."""
        while True:
            if self._turn.acquire(blocking=False):
                try:
                    start, delay = self._claim()
                finally:
                    self._turn.release()
                if start is not None:
                    return start
            else:
                delay = _ASYNC_POLL  # a thread is waiting for its turn; look again shortly
            await asyncio.sleep(delay)

    def penalize(self, seconds: float) -> None:
        """Hold every sharing thread back for `seconds` from now (used after a 429)."""
        if seconds <= 0:
            return
        with self._state:
            self._paused_until = max(self._paused_until, self._monotonic() + seconds)

    def widen(self) -> None:
        """The server refused a request that this limiter let start (a 429): its arrivals
        bunch more than the guard allows for, so the window grows by `GUARD_STEP` (up to
        `GUARD_CEILING` in all) and shrinks back at `GUARD_RECOVERY_PER_S` while no 429 comes."""
        with self._state:
            now = self._monotonic()
            extra = self._extra_guard_locked(now) + GUARD_STEP
            self._widened = min(extra, max(0.0, GUARD_CEILING - self._guard))
            self._widened_at = now

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self._rate:g}/s)"


@dataclass(frozen=True)
class KeyLimiters:
    """The two limits Capital.com applies per API key."""

    requests: RateLimiter
    logins: RateLimiter


LOGIN_RATE = 1.0


@dataclass
class _KeyEntry:
    limiters: KeyLimiters
    rates: list[float]  # the rate each live client of the key asked for


_registry: dict[str, _KeyEntry] = {}
_registry_lock = threading.Lock()


def key_fingerprint(api_key: str) -> str:
    """A stable, non-reversible name for an API key (the key itself is never stored)."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def limiters_for_key(api_key: str, rate: float) -> KeyLimiters:
    """The process-wide limiters of an API key, created on first use; pair with `release_key`.

    The server's limit is per key, so every live client of a key shares one pace: the lowest
    rate any of them asked for. When a client is released its rate no longer counts, so one
    careful client does not slow the process down for good; the limiters (and the pauses and
    recent starts they remember) outlive their clients, so sequential clients still keep pace.
    """
    fingerprint = key_fingerprint(api_key)
    with _registry_lock:
        entry = _registry.get(fingerprint)
        if entry is None:
            entry = _registry[fingerprint] = _KeyEntry(
                KeyLimiters(
                    requests=RateLimiter(rate, guard=SERVER_WINDOW_GUARD),
                    logins=RateLimiter(LOGIN_RATE, guard=SERVER_WINDOW_GUARD),
                ),
                [],
            )
        entry.rates.append(rate)
        entry.limiters.requests.set_rate(min(entry.rates))
        return entry.limiters


def release_key(api_key: str, rate: float) -> None:
    """A client of `api_key` that asked for `rate` is gone: the key's pace is recomputed."""
    with _registry_lock:
        entry = _registry.get(key_fingerprint(api_key))
        if entry is None or rate not in entry.rates:
            return
        entry.rates.remove(rate)
        if entry.rates:
            entry.limiters.requests.set_rate(min(entry.rates))


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter, bounded in attempts and in total time.

    Full jitter (a uniform draw between 0 and the exponential ceiling) keeps threads that
    failed together from retrying together.
    """

    base: float = 0.5
    cap: float = 8.0
    max_attempts: int = 6
    max_seconds: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base < 0 or self.cap < 0 or self.max_seconds < 0:
            raise ValueError("backoff times must not be negative")

    def delay(
        self, retries_so_far: int, attempts: int, elapsed: float, draw: Callable[[float], float]
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when the budget is spent.

        `draw(ceiling)` returns a number in `[0, ceiling]` (a seeded random source in tests).
        """
        if attempts >= self.max_attempts:
            return None
        delay = draw(min(self.cap, self.base * (2**retries_so_far)))
        if elapsed + delay > self.max_seconds:
            return None
        return delay
