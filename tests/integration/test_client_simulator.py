"""The Capital.com client against the simulator over real HTTP: every fetch ends compared with the
simulator's ground truth.

A fetch either returns exactly the rows the simulator holds for the range, or it fails clearly:
a window that did not arrive whole is `failed`, shows in `gaps()`, and no window is marked
complete unless its rows equal the ground truth for that window.

Boundaries: the client keeps rows with `start <= ts <= end` from every window (see
`ledger_etl.capital.history`), so a fetch of `[start, end)` returns what the server answers for
`from=start&to=end` under its inclusivity rule: the row exactly on `end` comes along when the
server includes `to`, and the row exactly on `start` is left to the previous range when the server
excludes `from`. `Truth.indices` models exactly that, and the adjacent-range test shows that
consecutive ranges together lose and double nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ledger_etl.capital import (
    ACTIVITY,
    TRANSACTIONS,
    ApiError,
    AuthenticationError,
    CapitalClient,
    CapitalError,
    EndpointSpec,
    FetchRecord,
    HistoryResult,
    MalformedResponseError,
    RateLimiter,
    TransientError,
    Window,
    fetch_history,
)
from ledger_etl.capital.history import COMPLETE, PROBE, RETRIED, SPLIT
from ledger_etl.capital.ratelimit import SERVER_WINDOW_GUARD
from ledger_etl.simulator import SimulatorServer
from tests.conftest import make_server

UTC_DAY = timedelta(days=1)
ONE_MS = timedelta(milliseconds=1)
FAST_BACKOFF = {"backoff_base": 0.02, "backoff_cap": 0.1}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- the simulator and the client ---


@contextmanager
def simulator(**overrides: Any) -> Iterator[SimulatorServer]:
    server = make_server(**overrides)
    try:
        yield server
    finally:
        server.stop()


def new_client(server: SimulatorServer, *, rate: float = 200.0, **kw: Any) -> CapitalClient:
    """A client with its own limiters, so no test inherits another's pacing (the per-key
    limiters are process-wide and keep the lowest rate ever asked for)."""
    config = server.simulator.config
    kw.setdefault("rate_limiter", RateLimiter(rate, guard=SERVER_WINDOW_GUARD))
    kw.setdefault(
        "login_limiter", RateLimiter(config.login_rate_per_second, guard=SERVER_WINDOW_GUARD)
    )
    kw.setdefault("api_key", config.api_key)
    kw.setdefault("identifier", config.identifier)
    kw.setdefault("password", config.password)
    return CapitalClient(
        server.url, kw.pop("api_key"), kw.pop("identifier"), kw.pop("password"),
        rate_limit=rate, **kw,
    )  # fmt: skip


def admin(server: SimulatorServer, method: str, path: str, **kw: Any) -> Any:
    response = httpx.request(method, f"{server.url}/_sim{path}", timeout=60, **kw)
    assert response.status_code == 200, response.text
    return response.json()


def account_ids(server: SimulatorServer) -> list[str]:
    return [a["accountId"] for a in admin(server, "GET", "/accounts")["accounts"]]


def warm_up(server: SimulatorServer) -> None:
    """Have the simulator build its world's balances now: a fresh world makes the first login
    slow, which tests with a short read timeout must not mistake for a slow history answer."""
    for account in account_ids(server):
        admin(server, "GET", "/truth/balance", params={"account": account})


def set_faults(server: SimulatorServer, profile: dict[str, Any]) -> None:
    admin(server, "PUT", "/faults", json=profile)


def fired(server: SimulatorServer) -> list[int]:
    """How often each fault rule fired, in rule order."""
    return [rule["fired"] for rule in admin(server, "GET", "/faults")["rules"]]


def request_log(server: SimulatorServer) -> list[dict[str, Any]]:
    return admin(server, "GET", "/requests", params={"limit": 20000})["requests"]


def history_log(server: SimulatorServer) -> list[dict[str, Any]]:
    return [e for e in request_log(server) if e["path"].startswith("/history/")]


# --- ground truth ---

KIND = {"transactions": "transactions", "activity": "activities"}
STAMP = {"transactions": "dateUtc", "activity": "dateUTC"}


def row_key(endpoint: str, raw: dict[str, Any] | str) -> tuple[Any, ...]:
    """What must match: the reference and amount of a transaction; the identity of an activity.

    `raw` is a server row, or a fetched row's JSON text as the client kept it."""
    if isinstance(raw, str):
        raw = json.loads(raw, parse_float=Decimal)
    if endpoint == "transactions":
        return (raw["reference"], Decimal(str(raw["size"])))
    return tuple(raw[k] for k in ("dateUTC", "dealId", "type", "status", "source"))


class Truth:
    """The simulator's rows of one account and endpoint over `[start, end]` (both included)."""

    def __init__(
        self,
        server: SimulatorServer,
        account: str,
        spec: EndpointSpec,
        start: datetime,
        end: datetime,
    ) -> None:
        self.endpoint = spec.name
        self.bounds = server.simulator.config.history_bounds
        params = {"account": account, "from": _iso(start), "to": _iso(end + ONE_MS)}
        body = admin(server, "GET", f"/truth/{spec.name}", params=params)
        self.rows: list[dict[str, Any]] = body[KIND[spec.name]]
        self.stamps = [at(r[STAMP[spec.name]]) for r in self.rows]
        self._order = sorted(range(len(self.rows)), key=self.stamps.__getitem__)
        self._sorted = [self.stamps[i] for i in self._order]

    def indices(self, start: datetime, end: datetime) -> set[int]:
        """The rows the server answers for `from=start&to=end`, per its inclusivity rule."""
        low = (bisect_right if self.bounds == "left-open" else bisect_left)(self._sorted, start)
        high = (bisect_left if self.bounds == "half-open" else bisect_right)(self._sorted, end)
        return set(self._order[low:high])

    def keys(self, indices: Iterable[int]) -> Counter[tuple[Any, ...]]:
        return Counter(row_key(self.endpoint, self.rows[i]) for i in indices)

    def at_instant(self, instant: datetime) -> Counter[tuple[Any, ...]]:
        return self.keys(i for i, ts in enumerate(self.stamps) if ts == instant)


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def got_keys(result: HistoryResult) -> Counter[tuple[Any, ...]]:
    return Counter(row_key(result.endpoint, raw) for raw in result.raws)


def check(server: SimulatorServer, result: HistoryResult, *, complete: bool = True) -> Truth:
    """Fetched rows against ground truth.

    Always: every window marked complete holds exactly the server's rows for it, and the result
    holds exactly the union of the complete windows' rows (a failed window contributes nothing
    but is a gap). With `complete`, no window failed and the result is the whole range.
    """
    requested = result.requested
    # The fetch also probes one second either side of the range's start (see capital.history).
    first = requested.start - PROBE
    truth = Truth(server, result.account_id, _spec(result.endpoint), first, requested.end)
    union: set[int] = set()
    for record in result.records:
        assert record.account_id == result.account_id
        if record.outcome != COMPLETE:
            continue
        expected = truth.indices(record.window_start, record.window_end)
        got = Counter(row_key(result.endpoint, raw) for raw in record.raws)
        assert got == truth.keys(expected), f"window {record.window} is complete but wrong"
        union |= expected
    assert len(result.rows) == len(result.raws) == len(result.keys)
    assert got_keys(result) == truth.keys(union)
    assert result.problems == []
    if complete:
        assert [(r.window, r.error) for r in result.failed] == []
        assert result.gaps() == []
        assert got_keys(result) == truth.keys(truth.indices(first, requested.end))
    return truth


def _spec(name: str) -> EndpointSpec:
    return TRANSACTIONS if name == "transactions" else ACTIVITY


def fetch_both(
    client: CapitalClient, account: str, start: datetime, end: datetime, **kw: Any
) -> list[HistoryResult]:
    return [
        fetch_history(client, account, spec, start, end, **kw) for spec in (TRANSACTIONS, ACTIVITY)
    ]


def retried(result: HistoryResult) -> int:
    return sum(r.attempts - 1 for r in result.records)


# --- volume and boundaries ---


def test_twelve_month_backfill_of_two_accounts_matches_ground_truth():
    start, end = at("2025-01-01"), at("2026-01-01")
    with simulator(rate_limit_per_second=0) as server, new_client(server) as client:
        accounts = account_ids(server)
        assert len(accounts) == 2
        midnight_rows = 0
        for account in accounts:
            for result in fetch_both(client, account, start, end):
                truth = check(server, result)
                assert len(result.records) == 366  # 365 days and the start-edge probe
                assert all(r.outcome == COMPLETE and r.attempts == 1 for r in result.records)
                assert len(result.rows) > 1000
                # Swaps and rebates sit exactly on window (and month) boundaries.
                firsts = [at(f"2025-{m:02d}-01") for m in range(2, 13)]
                midnight_rows += sum(sum(truth.at_instant(t).values()) for t in firsts)
        assert midnight_rows > 0
        assert client.stats.snapshot()["retries"] == 0
        assert admin(server, "GET", "/stats")["logins"] == 1


@pytest.mark.parametrize("bounds", ["closed", "half-open", "left-open"])
def test_boundary_rows_are_neither_lost_nor_doubled(bounds):
    """Adjacent ranges meeting on a month boundary, each cut into daily windows whose edges carry
    the midnight swaps (and, on March 1, a month's rebate), under each inclusivity rule."""
    first, middle, last = at("2025-02-24"), at("2025-04-01"), at("2025-04-06")
    with simulator(rate_limit_per_second=0, history_bounds=bounds) as server:
        account = account_ids(server)[1]  # the non-preferred account: fetched after a switch
        with new_client(server) as client:
            for spec in (TRANSACTIONS, ACTIVITY):
                before = fetch_history(client, account, spec, first, middle)
                after = fetch_history(client, account, spec, middle, last)
                check(server, before)
                check(server, after)
                truth = Truth(server, account, spec, first - PROBE, last)  # the probe reaches back
                on_middle = truth.at_instant(middle)
                assert on_middle, "the month boundary carries rows"
                # Each range: the boundary row comes from whichever side the server gives it to.
                in_before = got_keys(before) & on_middle
                in_after = got_keys(after) & on_middle
                assert in_before == (on_middle if bounds != "half-open" else Counter())
                assert in_after == on_middle  # with an exclusive `from`, the edge probe sees it
                # Together: every row of [first, last] the server hands out, each exactly once.
                keyed = dict(zip(before.keys, before.raws, strict=True))
                keyed.update(zip(after.keys, after.raws, strict=True))
                union = Counter(row_key(spec.name, raw) for raw in keyed.values())
                assert union == truth.keys(truth.indices(first - PROBE, last))
                interior = [first + UTC_DAY * d for d in range(1, (last - first).days)]
                on_edges = sum(sum(truth.at_instant(t).values()) for t in interior)
                assert on_edges > 10
                if spec is TRANSACTIONS:
                    rebates = [r for r in truth.rows if r["transactionType"] == "REBATE"]
                    assert {r["dateUtc"] for r in rebates} >= {"2025-03-01T00:00:00",
                                                               "2025-04-01T00:00:00"}  # fmt: skip


def test_silent_truncation_splits_windows_until_every_row_arrives():
    start, end = at("2025-06-02"), at("2025-06-09")
    # A dense world, young and seen from just after the range: quick to generate.
    with simulator(rate_limit_per_second=0, rows_per_day=60, start=date(2025, 5, 26)) as server:
        server.simulator.clock.set(at("2025-06-10T12:00:00"))
        account = account_ids(server)[0]
        threshold = {}
        for spec in (TRANSACTIONS, ACTIVITY):
            truth = Truth(server, account, spec, start, end)
            per_second = Counter(ts.replace(microsecond=0) for ts in truth.stamps)
            # A window of one second holds [t, t+1s] on a closed server: two seconds' rows.
            densest = max(per_second[t] + per_second[t + timedelta(seconds=1)] for t in per_second)
            daily = Counter(ts.date() for ts in truth.stamps if ts < end)
            threshold[spec.name] = densest + 2
            assert min(daily.values()) > threshold[spec.name], "every day must be truncated"
        limit = max(threshold.values())
        set_faults(server, {"truncate_above": limit})
        with new_client(server) as client:
            for result in fetch_both(client, account, start, end, split_threshold=limit):
                check(server, result)
                split = [r for r in result.records if r.outcome == SPLIT]
                assert len(split) >= 7  # every day was cut short at least once
                assert all(r.row_count == limit for r in split)
                assert all(r.row_count < limit for r in result.records if r.outcome == COMPLETE)
                windows = {r.window for r in split}
                children = [r for r in result.records if r.parent is not None]
                assert {c.parent for c in children} == windows
                assert all(c.window.span <= c.parent.span / 2 + timedelta(seconds=1)
                           for c in children if c.parent)  # fmt: skip


# --- rate limits ---


def test_429_storm_paces_backs_off_and_loses_nothing():
    """A storm of 429s: the client keeps under the limit, pauses after each 429, and loses no
    row. One window is throttled on every one of its attempts: it fails its first pass and is
    fetched again once every other window has been tried."""
    start, end = at("2025-03-03"), at("2025-03-09")
    stormed = Window(at("2025-03-05"), at("2025-03-06"))
    attempts = 4
    storm = {
        "rules": [
            {"kind": "throttle", "path": "^/history/", "every": 4},
            {"kind": "throttle", "path": "^/history/", "nth": [9, 10, 11]},
            {"kind": "throttle", "path": "^/history/transactions$",
             "query": "from=2025-03-05T00:00:00", "nth": list(range(1, attempts + 1))},
        ]
    }  # fmt: skip
    starts: list[float] = []

    class RecordingLimiter(RateLimiter):
        def acquire(self) -> float:
            start = super().acquire()
            starts.append(start)
            return start

    limiter = RecordingLimiter(10, guard=SERVER_WINDOW_GUARD)
    with simulator(rate_limit_per_second=10, faults=storm) as server:
        account = account_ids(server)[1]
        with new_client(server, rate=10, max_attempts=attempts, rate_limiter=limiter) as client:
            results = fetch_both(client, account, start, end)
            for result in results:
                check(server, result)  # nothing lost: every window complete and exact
            stats = client.stats.snapshot()
        log = request_log(server)
    throttled = [e for e in log if e["status"] == 429]
    injected = sum(1 for e in throttled if e["faults"])
    assert injected >= 5 + attempts and len(throttled) == injected  # none of the server's own
    assert stats["rate_limited"] == len(throttled)
    # Every 429 was retried by the client, or ended a first pass that the second pass redid.
    records = [r for result in results for r in result.records]
    answered = sum(1 for r in records if r.outcome in (COMPLETE, SPLIT))
    assert sum(r.attempts for r in records) - answered == len(throttled)
    assert stats["retries"] == sum(retried(r) for r in results)
    # The stormed window: a first pass that spent every attempt, then one complete fetch.
    transactions = results[0]
    mine = sorted((r for r in transactions.records if r.window == stormed), key=lambda r: r.outcome)
    assert [r.outcome for r in mine] == [COMPLETE, RETRIED] and mine[1].attempts == attempts
    assert "RateLimitedError" in (mine[1].error or "")
    # ... fetched again only after every window not in the second pass had its answer.
    again = {r.window for r in transactions.records if r.outcome == RETRIED}
    history = [e for e in log if e["path"] == "/history/transactions"]
    last_try = max(e["t"] - e["ms"] / 1000 for e in history if _window_of(e) == stormed)
    assert all(e["t"] <= last_try for e in history if _window_of(e) not in again)
    # Never more than the limit in any one-second window: as the client started them, and as
    # the server saw them arrive.
    assert len(starts) == len(log)
    assert max(sum(1 for u in starts if t <= u < t + 1.0) for t in starts) <= 10
    arrivals = sorted(e["t"] - e["ms"] / 1000 for e in log)
    assert max(sum(1 for u in arrivals if t <= u < t + 1.0) for t in arrivals) <= 10
    # After every 429 everybody paused (the server forgets a second later), then backed off.
    for entry in throttled:
        arrived = entry["t"] - entry["ms"] / 1000
        later = [u for u in arrivals if u > arrived]
        gap = later[0] - arrived if later else None
        assert gap is None or gap >= 0.95, f"a request followed a 429 after {gap:.3f} s"


def _window_of(entry: dict[str, Any]) -> Window:
    params = entry["params"]
    return Window(at(params["from"]), at(params["to"]))


# --- transient failures ---


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_on_every_kth_request_is_retried(status):
    start, end = at("2025-05-05"), at("2025-05-15")
    faults = {"rules": [{"kind": "status", "status": status, "every": 3}]}
    with simulator(rate_limit_per_second=0, faults=faults) as server:
        account = account_ids(server)[0]
        with new_client(server, **FAST_BACKOFF) as client:
            results = fetch_both(client, account, start, end)
            for result in results:
                check(server, result)
            retries, injected = client.stats.snapshot()["retries"], fired(server)[0]
        failed_history = [e for e in history_log(server) if e["status"] == status]
    assert len(failed_history) >= 6 and all(e["faults"] for e in failed_history)
    assert sum(retried(r) for r in results) == len(failed_history)
    assert retries == injected  # logins and account switches are retried as well


def test_dropped_connections_on_every_kth_request_are_retried():
    start, end = at("2025-05-05"), at("2025-05-15")
    faults = {"rules": [{"kind": "drop", "every": 4}]}
    with simulator(rate_limit_per_second=0, faults=faults) as server:
        account = account_ids(server)[1]
        with new_client(server, **FAST_BACKOFF) as client:
            results = fetch_both(client, account, start, end)
            for result in results:
                check(server, result)
            retries, injected = client.stats.snapshot()["retries"], fired(server)[0]
        dropped = [e for e in history_log(server) if e["faults"]]
    assert len(dropped) >= 4
    assert sum(retried(r) for r in results) == len(dropped)
    assert retries == injected


def test_answers_slower_than_the_read_timeout_are_retried():
    start, end = at("2025-07-07"), at("2025-07-12")
    faults = {"rules": [{"kind": "latency", "seconds": 2.0, "path": "^/history/", "every": 4}]}
    with simulator(rate_limit_per_second=0, faults=faults) as server:
        account = account_ids(server)[0]
        warm_up(server)
        with new_client(server, read_timeout=0.5, **FAST_BACKOFF) as client:
            results = fetch_both(client, account, start, end)
            for result in results:
                check(server, result)
        slow = fired(server)[0]
    assert slow >= 2 and sum(retried(r) for r in results) == slow


def test_a_permanently_slow_endpoint_fails_its_windows_and_marks_nothing_complete():
    """Every activity answer is slower than the read timeout: each window spends its attempts
    in the first pass and again in the second, and nothing is marked complete."""
    start, end = at("2025-07-07"), at("2025-07-10")
    faults = {"rules": [{"kind": "latency", "seconds": 2.0, "path": "^/history/activity$"}]}
    with simulator(rate_limit_per_second=0, faults=faults) as server:
        account = account_ids(server)[0]
        warm_up(server)
        with new_client(server, read_timeout=0.5, max_attempts=2, **FAST_BACKOFF) as client:
            transactions, activity = fetch_both(client, account, start, end)
        check(server, transactions)
        check(server, activity, complete=False)
        slowed = fired(server)
    windows = [
        Window(start - PROBE, start + PROBE),
        *(Window(start + UTC_DAY * d, start + UTC_DAY * (d + 1)) for d in range(3)),
    ]  # 3 days and the edge probe
    assert activity.rows == [] and len(activity.records) == 8  # each window, twice
    assert all(r.attempts == 2 and "ReadTimeout" in (r.error or "") for r in activity.records)
    assert sorted(r.window for r in activity.records if r.outcome == RETRIED) == windows
    assert sorted(r.window for r in activity.failed) == windows
    assert slowed == [len(windows) * 4]  # two passes of two attempts each, no more
    assert activity.gaps() == [Window(start, end)]
    assert all(r.outcome == COMPLETE and r.attempts == 1 for r in transactions.records)


def test_html_and_truncated_json_answers_are_retried_never_taken_as_empty():
    start, end = at("2025-08-04"), at("2025-08-14")
    faults = {
        "rules": [
            {"kind": "html", "path": "^/history/", "every": 4},
            {"kind": "truncated_json", "path": "^/history/", "every": 5},
        ]
    }
    with simulator(rate_limit_per_second=0, faults=faults) as server:
        account = account_ids(server)[1]
        with new_client(server, **FAST_BACKOFF) as client:
            results = fetch_both(client, account, start, end)
            for result in results:
                check(server, result)
        corrupted = [e for e in history_log(server) if e["faults"]]
    assert {f.split(":")[1] for e in corrupted for f in e["faults"]} == {"html", "truncated_json"}
    assert sum(retried(r) for r in results) == len(corrupted) >= 6


def test_permanent_html_and_truncated_json_fail_their_windows():
    """A window whose answer is always an HTML page or cut-off JSON fails (after both passes),
    is never taken as empty, and leaves a gap of exactly that window."""
    start, end = at("2025-08-04"), at("2025-08-09")
    faults = {
        "rules": [
            {"kind": "html", "path": "^/history/transactions$", "query": "from=2025-08-05T"},
            {"kind": "truncated_json", "path": "^/history/activity$", "query": "from=2025-08-07T"},
        ]
    }
    with simulator(rate_limit_per_second=0, faults=faults) as server:
        account = account_ids(server)[0]
        with new_client(server, max_attempts=3, **FAST_BACKOFF) as client:
            transactions, activity = fetch_both(client, account, start, end)
        for result, day in ((transactions, "2025-08-05"), (activity, "2025-08-07")):
            check(server, result, complete=False)
            window = Window(at(day), at(day) + UTC_DAY)
            [first] = [r for r in result.records if r.outcome == RETRIED]
            [failed] = result.failed
            for record in (first, failed):
                assert record.window == window and record.attempts == 3
                assert record.row_count == 0 and record.rows == ()
                assert (record.error or "").startswith("MalformedResponseError:")
            assert result.gaps() == [window]
            assert all(r.outcome == COMPLETE for r in result.records if r.window != window)
            truth = Truth(server, account, _spec(result.endpoint), window.start, window.end)
            assert truth.rows, "the failed window does hold rows"
        assert fired(server) == [6, 6]  # three attempts in each of two passes


def test_permanent_5xx_on_one_window_fails_only_that_window():
    start, end = at("2025-09-01"), at("2025-09-08")
    bad = Window(at("2025-09-04"), at("2025-09-05"))
    rule = {"kind": "status", "status": 503, "path": "^/history/activity$",
            "query": "from=2025-09-04T00:00:00"}  # fmt: skip
    with simulator(rate_limit_per_second=0, faults={"rules": [rule]}) as server:
        account = account_ids(server)[1]
        with new_client(server, max_attempts=4, **FAST_BACKOFF) as client:
            transactions, activity = fetch_both(client, account, start, end)
        check(server, transactions)
        check(server, activity, complete=False)
    [failed] = activity.failed
    assert failed.window == bad and failed.http_status == 503 and failed.attempts == 4
    assert failed.error == (
        "TransientError: GET /history/activity -> 503 error.service.unavailable after 4 attempts"
    )
    assert activity.gaps() == [bad]
    assert all(r.outcome == COMPLETE for r in activity.records if r.window != bad)
    inside = [r for r in activity.rows if bad.start < r.date_utc < bad.end]
    assert inside == []  # only rows on its edges, which the neighbours return, are kept


# --- sessions ---


def test_session_expiring_every_n_requests_relogs_once_each_and_keeps_the_account():
    start, end = at("2025-10-01"), at("2025-10-21")
    # Requests already sent with the dead token (at most workers - 1) never reach the next
    # firing, so every firing kills a live session: expiries == firings.
    workers, every = 4, 10
    faults = {"rules": [{"kind": "expire_session", "path": "^/history/", "every": every}]}
    with simulator(rate_limit_per_second=0, faults=faults) as server:
        preferred, second = account_ids(server)
        with new_client(server) as client:
            results = fetch_both(client, second, start, end, max_workers=workers)
            expiries = fired(server)[0]
            stats = client.stats.snapshot()
            assert client.session_info()["accountId"] == second
        for result in results:
            check(server, result)
            other = Truth(server, preferred, _spec(result.endpoint), start, end)
            assert not set(got_keys(result)) & set(other.keys(range(len(other.rows))))
        sim_stats = admin(server, "GET", "/stats")
    assert expiries >= 3
    assert stats["relogins"] == expiries
    assert stats["logins"] == sim_stats["logins"] == 1 + expiries
    assert sum(r.relogins for result in results for r in result.records) >= expiries


def test_sessions_expired_from_outside_mid_backfill_relog_once_each():
    start, end = at("2025-11-01"), at("2025-12-31")
    with simulator(rate_limit_per_second=0) as server:
        second = account_ids(server)[1]
        trigger, done = threading.Semaphore(0), threading.Event()
        expired: list[int] = []

        def operator() -> None:
            # Another party kills every session while the backfill runs, twice.
            for _ in range(2):
                trigger.acquire()
                expired.append(admin(server, "POST", "/sessions/expire")["expired"])
                done.set()

        seen: list[FetchRecord] = []

        def on_window(record: FetchRecord) -> None:
            seen.append(record)
            if len(seen) in (10, 35):
                done.clear()
                trigger.release()
                assert done.wait(10)

        thread = threading.Thread(target=operator)
        thread.start()
        with new_client(server, rate=40) as client:
            result = fetch_history(client, second, TRANSACTIONS, start, end, on_window=on_window)
            stats = client.stats.snapshot()
            assert client.session_info()["accountId"] == second
        thread.join(10)
        check(server, result)
        sim_stats = admin(server, "GET", "/stats")
    assert expired == [1, 1]
    assert stats["relogins"] == 2 and stats["logins"] == sim_stats["logins"] == 3
    assert sum(r.relogins for r in result.records) >= 2
    assert len(result.records) == 61  # 60 days and the start-edge probe


# --- secrets ---

CANARY_KEY = "CANARY-KEY-7f3a"
CANARY_PASSWORD = "CANARY-PASS-91bc"
CANARY_WRONG_PASSWORD = "CANARY-WRONG-PASS-c0de"


def test_no_credential_or_session_token_leaks_anywhere(caplog, monkeypatch):
    for name in ("", "ledger_etl", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    start, end = at("2025-04-07"), at("2025-04-10")
    texts: list[str] = []
    errors: list[BaseException] = []
    results: list[HistoryResult] = []
    overrides = {"api_key": CANARY_KEY, "password": CANARY_PASSWORD, "rate_limit_per_second": 0}
    with simulator(**overrides) as server:
        issued: list[str] = []
        create = server.simulator.sessions.create

        def recording_create(*args: Any) -> Any:
            session = create(*args)
            issued.extend([session.cst, session.security_token])
            return session

        monkeypatch.setattr(server.simulator.sessions, "create", recording_create)
        account = account_ids(server)[1]
        # Success, plain and encrypted logins.
        for encrypted in (False, True):
            with new_client(server, encrypted_password=encrypted) as client:
                results += fetch_both(client, account, start, end)
                texts += [repr(client), repr(client.stats), repr(client._session)]
        # Retries of every kind, session expiry included.
        set_faults(server, {"rules": [
            {"kind": "status", "status": 503, "every": 5},
            {"kind": "drop", "every": 7},
            {"kind": "html", "path": "^/history/", "every": 6},
            {"kind": "truncated_json", "path": "^/history/", "every": 9},
            {"kind": "throttle", "path": "^/history/", "nth": [3]},
            {"kind": "expire_session", "path": "^/history/", "every": 11},
        ]})  # fmt: skip
        with new_client(server, **FAST_BACKOFF) as client:
            results += fetch_both(client, account, start, end, max_workers=2)
        # Exception paths: a window that keeps failing, API errors, malformed and transient
        # answers outside history, and a rejected password.
        set_faults(server, {"rules": [
            {"kind": "status", "status": 502, "path": "^/history/", "query": "from=2025-04-08T"},
            {"kind": "html", "path": "^/ping$"},
            {"kind": "status", "status": 503, "path": "^/accounts$"},
        ]})  # fmt: skip
        with new_client(server, max_attempts=2, **FAST_BACKOFF) as client:
            results += fetch_both(client, account, start, end)
            calls = [
                lambda: client.request("GET", "/history/activity", params={"from": "yesterday"}),
                client.ping,
                client.accounts,
                lambda: client.switch_account("no-such-account"),
            ]
            for call in calls:
                with pytest.raises(CapitalError) as caught:
                    call()
                errors.append(caught.value)
        assert {type(e) for e in errors} == {ApiError, MalformedResponseError, TransientError}
        with new_client(server, password=CANARY_WRONG_PASSWORD) as client:
            with pytest.raises(AuthenticationError) as caught:
                fetch_history(client, account, TRANSACTIONS, start, end)
            errors.append(caught.value)
            texts += [repr(client), repr(client._session)]
        texts.append(repr(admin(server, "GET", "/stats")))
    assert len(issued) >= 10, "the sweep needs real session tokens to look for"
    assert any(r.failed for r in results) and any(retried(r) for r in results)
    for error in errors:
        texts += [str(error), repr(error), repr(vars(error)), *traceback.format_exception(error)]
    for result in results:
        texts += [repr(result.problems), repr(result.requested), repr(result.failed)]
        for record in result.records:
            texts += [repr(record), repr(record.params), str(record.error)]
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.args), str(record.exc_text)]
    texts.append(caplog.text)
    swept = "\n".join(texts)
    assert "GET /history/transactions" in swept and "retrying" in swept  # DEBUG and INFO lines
    for secret in (CANARY_KEY, CANARY_PASSWORD, CANARY_WRONG_PASSWORD, *issued):
        assert secret not in swept


# --- account scoping and what a streaming client needs ---


def test_threads_on_two_accounts_interleave_and_never_see_each_others_rows():
    """One client, two threads, each fetching its own account many times over: every fetch
    equals that account's ground truth, however the scopes interleave."""
    with simulator() as server:
        first, second = account_ids(server)[:2]
        days = [at("2025-06-02T00:00:00") + i * UTC_DAY for i in range(4)]
        errors: list[str] = []
        switches: list[str] = []
        with new_client(server) as client:

            def work(account: str) -> None:
                try:
                    for day in days:
                        result = fetch_history(client, account, TRANSACTIONS, day, day + UTC_DAY)
                        check(server, result)
                        switches.append(account)
                except Exception:  # reported below with the traceback
                    errors.append(traceback.format_exc())

            threads = [threading.Thread(target=work, args=(a,)) for a in (first, second)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
        assert errors == []
        assert sorted(switches) == sorted([first] * len(days) + [second] * len(days))


def test_on_account_scopes_requests_and_refuses_a_nested_other_account():
    with simulator() as server, new_client(server) as client:
        first, second = account_ids(server)[:2]
        with client.on_account(second):
            assert client.active_account_id == second
            assert client.session_info()["accountId"] == second
            with client.on_account(second):  # the same account nests
                assert client.session_info()["accountId"] == second
            with pytest.raises(ValueError, match="already scoped"), client.on_account(first):
                pass
        with client.on_account(first):
            assert client.session_info()["accountId"] == first


def test_streaming_needs_tokens_host_and_an_async_relogin():
    import asyncio

    with simulator() as server, new_client(server) as client:
        account = account_ids(server)[1]
        with client.on_account(account):
            tokens = client.session_tokens()
            assert tokens.cst and tokens.security_token
            assert "present=True" in repr(tokens) and tokens.cst not in repr(tokens)
            assert client.streaming_host  # from the session answer
            admin(server, "POST", "/sessions/expire")
            fresh = asyncio.run(client.relogin_async(tokens.generation))
            assert fresh.generation > tokens.generation and fresh.cst != tokens.cst
            # the account was restored before the new tokens were handed out
            assert client.session_info()["accountId"] == account


class RecordingLimiter(RateLimiter):
    """A limiter that remembers which of its starts were reported as sent, and when."""

    def __init__(self) -> None:
        super().__init__(200.0, guard=SERVER_WINDOW_GUARD)
        self.starts: list[float] = []
        self.sent_at: dict[float, float] = {}

    def acquire(self) -> float:
        start = super().acquire()
        self.starts.append(start)
        return start

    def sent(self, start: float) -> None:
        self.sent_at[start] = time.monotonic()
        super().sent(start)


def test_each_request_is_counted_from_the_moment_it_leaves(shared_sim):
    # The limiter counts a request from when httpcore writes it, not from when it was let
    # start: every start is reported once, no earlier than the start itself.
    limiter = RecordingLimiter()
    with new_client(shared_sim, rate_limiter=limiter) as client:
        client.accounts()
        client.server_time()
        client.accounts()
    assert len(limiter.starts) >= 3
    assert sorted(limiter.sent_at) == sorted(limiter.starts)
    assert all(limiter.sent_at[s] >= s for s in limiter.starts)
