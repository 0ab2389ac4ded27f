"""Pacing against a server that counts arrivals, not our starts.

Capital.com (and the simulator) reject the 11th request arriving within one second. Requests
started exactly 1/rate apart arrive with a little jitter, so a client pacing exactly at the limit
draws occasional 429s, and each one pauses every thread for a second. The per-key limiters keep
a guard on the window so jittered arrivals stay under the server's count.
"""

import itertools
import random

import pytest

from ledger_etl.capital.ratelimit import (
    GUARD_CEILING,
    GUARD_RECOVERY_PER_S,
    GUARD_STEP,
    SERVER_WINDOW_GUARD,
    RateLimiter,
    limiters_for_key,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def server_rejections(arrivals: list[float], limit: int, window: float = 1.0) -> int:
    """What a sliding-window server (the simulator's rule) answers 429 to."""
    accepted: list[float] = []
    rejected = 0
    for t in sorted(arrivals):
        accepted = [a for a in accepted if t - a < window]
        if len(accepted) >= limit:
            rejected += 1
        else:
            accepted.append(t)
    return rejected


def jittered_arrivals(guard: float, *, jitter: float, n: int = 600, seed: int = 5) -> list[float]:
    clock = FakeClock()
    limiter = RateLimiter(10, guard=guard, monotonic=clock.monotonic, sleep=clock.sleep)
    rng = random.Random(seed)
    return [limiter.acquire() + rng.uniform(0.0, jitter) for _ in range(n)]


def test_pacing_exactly_at_the_limit_is_rejected_under_jitter():
    # The behaviour the guard fixes: without it, a few milliseconds of jitter draw 429s.
    assert server_rejections(jittered_arrivals(0.0, jitter=0.005), limit=10) > 0


@pytest.mark.parametrize("jitter", [0.0, 0.005, 0.02, 0.04])
def test_guarded_pacing_survives_arrival_jitter(jitter):
    arrivals = jittered_arrivals(SERVER_WINDOW_GUARD, jitter=jitter)
    assert server_rejections(arrivals, limit=10) == 0


def test_guard_costs_only_the_guard():
    clock = FakeClock()
    limiter = RateLimiter(10, guard=0.05, monotonic=clock.monotonic, sleep=clock.sleep)
    starts = [limiter.acquire() for _ in range(101)]
    # Ten starts per 1.05 s: 100 intervals take ten windows.
    assert starts[-1] - starts[0] == pytest.approx(10 * 1.05)
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.1 - 1e-9


def test_per_key_limiters_carry_the_guard():
    limiters = limiters_for_key("pacing-guard-key", 10)
    assert limiters.requests.guard == SERVER_WINDOW_GUARD > 0
    assert limiters.logins.guard == SERVER_WINDOW_GUARD
    assert RateLimiter(5).guard == 0.0  # explicit limiters keep the exact bound


@pytest.mark.parametrize("guard", [-0.1, float("inf"), float("nan")])
def test_invalid_guard(guard):
    with pytest.raises(ValueError, match="guard"):
        RateLimiter(10, guard=guard)


def delayed_sends(*, restamp: bool, n: int = 400, seed: int = 9) -> list[float]:
    """Arrivals when every seventh request waits 120 ms for the CPU between its start and its
    first byte (the rest leave at once), with or without telling the limiter when it left."""
    clock = FakeClock()
    limiter = RateLimiter(10, guard=SERVER_WINDOW_GUARD, monotonic=clock.monotonic,
                          sleep=clock.sleep)  # fmt: skip
    rng = random.Random(seed)
    arrivals = []
    for i in range(n):
        start = limiter.acquire()
        delay = 0.12 if i % 7 == 0 else rng.uniform(0.0, 0.002)
        if restamp:
            clock.now += delay
            limiter.sent(start)
            arrivals.append(clock.now)
            clock.now -= delay  # the other threads did not wait for this one
        else:
            arrivals.append(start + delay)
    return arrivals


def test_a_start_delayed_before_its_first_byte_is_counted_from_when_it_left():
    # A request that lost the CPU after its start arrives late; the one ten starts later, sent
    # at once, then arrives within the same second of the server's count.
    assert server_rejections(delayed_sends(restamp=False), limit=10) > 0
    assert server_rejections(delayed_sends(restamp=True), limit=10) == 0


def test_sent_ignores_a_start_it_no_longer_holds():
    clock = FakeClock()
    limiter = RateLimiter(10, monotonic=clock.monotonic, sleep=clock.sleep)
    limiter.sent(123.0)  # never handed out: nothing changes
    starts = [limiter.acquire() for _ in range(11)]
    assert starts[-1] - starts[0] == pytest.approx(1.0)


def test_a_429_widens_the_guard_and_the_widening_wears_off():
    clock = FakeClock()
    limiter = RateLimiter(10, guard=0.05, monotonic=clock.monotonic, sleep=clock.sleep)
    assert limiter.current_guard() == pytest.approx(0.05)
    limiter.widen()
    limiter.widen()
    assert limiter.current_guard() == pytest.approx(0.15)
    starts = [limiter.acquire() for _ in range(11)]
    assert starts[-1] - starts[0] == pytest.approx(1.15, abs=0.01)
    for _ in range(20):
        limiter.widen()
    assert limiter.current_guard() == pytest.approx(GUARD_CEILING)
    clock.now += 1000
    assert limiter.current_guard() == pytest.approx(0.05)
    # The widening recovers at a known pace: one step takes step / recovery seconds.
    limiter.widen()
    clock.now += GUARD_STEP / GUARD_RECOVERY_PER_S / 2
    assert limiter.current_guard() == pytest.approx(0.05 + GUARD_STEP / 2)
