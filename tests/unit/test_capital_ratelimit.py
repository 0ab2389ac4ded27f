import itertools
import math
import random
import threading

import pytest

from ledger_etl.capital.ratelimit import (
    Backoff,
    RateLimiter,
    key_fingerprint,
    limiters_for_key,
    release_key,
)


class FakeClock:
    """A monotonic clock that only moves when somebody sleeps."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.sleep(seconds)


def max_starts_in_any_second(starts: list[float]) -> int:
    starts = sorted(starts)
    best = 0
    for i, first in enumerate(starts):
        best = max(best, sum(1 for s in starts[i:] if s < first + 1.0))
    return best


@pytest.mark.parametrize("rate", [10.0, 2.5, 1.0, 7.0, 0.5])
def test_never_more_than_floor_rate_in_any_second(rate):
    clock = FakeClock()
    limiter = RateLimiter(rate, monotonic=clock.monotonic, sleep=clock.sleep)
    rng = random.Random(7)
    starts = []
    for _ in range(120):
        starts.append(limiter.acquire())
        if rng.random() < 0.3:  # sometimes the caller is busy for a while
            clock.advance(rng.uniform(0, 0.5))
    assert max_starts_in_any_second(starts) <= max(1, math.floor(rate))
    assert starts == sorted(starts)


def test_full_speed_reaches_the_rate():
    clock = FakeClock()
    limiter = RateLimiter(10, monotonic=clock.monotonic, sleep=clock.sleep)
    starts = [limiter.acquire() for _ in range(101)]
    assert starts[-1] - starts[0] == pytest.approx(10.0)
    assert max_starts_in_any_second(starts) == 10


def test_threads_share_one_limiter():
    clock = FakeClock()
    limiter = RateLimiter(10, monotonic=clock.monotonic, sleep=clock.sleep)
    starts: list[float] = []
    lock = threading.Lock()

    def worker():
        for _ in range(25):
            start = limiter.acquire()
            with lock:
                starts.append(start)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(starts) == 200
    assert max_starts_in_any_second(starts) <= 10
    assert max(starts) - min(starts) >= 19.8


def test_penalize_pauses_everybody():
    clock = FakeClock()
    limiter = RateLimiter(10, monotonic=clock.monotonic, sleep=clock.sleep)
    first = limiter.acquire()
    limiter.penalize(1.0)
    assert limiter.acquire() >= first + 1.0
    limiter.penalize(0)  # no-op


def test_real_clock_smoke():
    limiter = RateLimiter(1000)
    starts = [limiter.acquire() for _ in range(20)]
    assert all(b - a >= 0.001 - 1e-6 for a, b in itertools.pairwise(starts))


def test_registry_shares_per_key_and_keeps_the_lowest_rate():
    a = limiters_for_key("registry-key-a", 10)
    assert limiters_for_key("registry-key-a", 20) is a
    assert a.requests.rate == 10
    limiters_for_key("registry-key-a", 4)
    assert a.requests.rate == 4
    assert limiters_for_key("registry-key-b", 10) is not a
    assert a.logins.rate == 1.0
    fingerprint = key_fingerprint("registry-key-a")
    assert "registry-key-a" not in fingerprint and len(fingerprint) == 64
    assert "registry-key-a" not in repr(a)


def test_a_released_client_no_longer_holds_the_key_pace_down():
    slow = limiters_for_key("registry-key-c", 2)
    fast = limiters_for_key("registry-key-c", 50)
    assert fast is slow and slow.requests.rate == 2  # the most careful live client wins
    release_key("registry-key-c", 2)
    assert slow.requests.rate == 50  # only the fast client is left
    release_key("registry-key-c", 2)  # releasing what is not held changes nothing
    assert slow.requests.rate == 50
    release_key("registry-key-c", 50)
    again = limiters_for_key("registry-key-c", 20)
    assert again is slow and again.requests.rate == 20  # the same limiters, a fresh pace
    release_key("registry-key-c", 20)


def test_invalid_rate():
    with pytest.raises(ValueError):
        RateLimiter(0)
    with pytest.raises(ValueError):
        RateLimiter(float("inf"))


def test_backoff_full_jitter_and_budget():
    backoff = Backoff(base=0.5, cap=8.0, max_attempts=6, max_seconds=120)
    ceilings = []
    for retries in range(8):
        backoff.delay(retries, 1, 0.0, lambda c: ceilings.append(c) or 0.0)
    assert ceilings == [0.5, 1, 2, 4, 8, 8, 8, 8]
    assert backoff.delay(0, 6, 0.0, lambda c: c) is None  # attempts exhausted
    assert backoff.delay(3, 2, 117.0, lambda c: c) is None  # would pass the time budget
    assert backoff.delay(3, 2, 100.0, lambda c: c) == 4
    rng = random.Random(1)
    draws = [backoff.delay(2, 1, 0.0, lambda c: rng.uniform(0, c)) for _ in range(200)]
    assert all(0 <= d <= 2 for d in draws) and len(set(draws)) > 150
    with pytest.raises(ValueError):
        Backoff(max_attempts=0)


def test_threads_and_asyncio_tasks_share_one_pace():
    """Starts claimed by threads and by asyncio tasks on one limiter together keep the bound:
    never more than floor(rate) starts within any second (plus the guard)."""
    import asyncio
    import threading

    limiter = RateLimiter(8.0, guard=0.05)
    starts: list[float] = []
    lock = threading.Lock()

    def thread_work() -> None:
        for _ in range(6):
            start = limiter.acquire()
            with lock:
                starts.append(start)

    async def task_work() -> None:
        for _ in range(6):
            start = await limiter.acquire_async()
            with lock:
                starts.append(start)

    async def main() -> None:
        await asyncio.gather(task_work(), task_work())

    threads = [threading.Thread(target=thread_work) for _ in range(2)]
    for thread in threads:
        thread.start()
    asyncio.run(main())
    for thread in threads:
        thread.join(30)
    starts.sort()
    assert len(starts) == 24
    window = 1.0 + limiter.guard
    for i, start in enumerate(starts):
        within = [s for s in starts[i:] if s < start + window]
        assert len(within) <= 8, f"{len(within)} starts within {window}s from {start}"
