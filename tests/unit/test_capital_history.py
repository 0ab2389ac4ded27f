import itertools
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from ledger_etl.capital import (
    ACTIVITY,
    TRANSACTIONS,
    AuthenticationError,
    CapitalClient,
    Window,
)
from ledger_etl.capital import history as _history
from ledger_etl.capital.history import COMPLETE, FAILED, RETRIED, SPLIT
from ledger_etl.capital.ratelimit import RateLimiter

T0 = datetime(2026, 7, 1, tzinfo=UTC)
FMT = "%Y-%m-%dT%H:%M:%S"


def stamp(instant: datetime) -> str:
    text = instant.strftime(FMT)
    return text if instant.microsecond == 0 else f"{text}.{instant.microsecond // 1000:03d}"


def tx(reference: str, when: datetime, size: str = "1.00") -> dict:
    return {
        "date": stamp(when + timedelta(hours=2)),
        "dateUtc": stamp(when),
        "instrumentName": "GOLD",
        "transactionType": "TRADE",
        "note": "Trade closed",
        "reference": reference,
        "size": size,
        "currency": "USDd",
        "status": "PROCESSED",
        "dealId": f"deal-{reference}",
    }


def act(deal_id: str, when: datetime, level: str = "75.31", source: str = "USER") -> dict:
    return {
        "date": stamp(when + timedelta(hours=3)),
        "dateUTC": stamp(when),
        "epic": "OIL_CRUDE",
        "dealId": deal_id,
        "source": source,
        "type": "POSITION",
        "status": "ACCEPTED",
        "details": {"size": 1, "direction": "BUY", "level": Decimal(level), "currency": "USD"},
    }


class HistoryApi:
    """Serves both history endpoints for the active account with a chosen boundary rule."""

    def __init__(self, rows: dict[str, dict[str, list[dict]]], *, mode: str = "closed") -> None:
        self.rows = rows  # account -> endpoint key -> rows
        self.mode = mode  # closed | from_open | to_open
        self.cap: int | None = None
        self.fail_from: set[str] = set()
        self.fail_times: dict[str, int] = {}  # from -> 503 answers still to give, then rows
        self.extra: dict[str, list[dict]] = {}  # from -> rows returned in addition
        self.latency = 0.0
        self.active = "A1"
        self.expired = False
        self.expire_at_next_history = False
        self.calls: list[tuple[str, str, dict]] = []
        self.request_times: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1")
        params = dict(request.url.params)
        with self.lock:
            self.calls.append((request.method, path, params))
            self.request_times.append(time.monotonic())
        if (request.method, path) == ("POST", "/session"):
            self.active = "A1"
            self.expired = False
            return httpx.Response(
                200, json={"currentAccountId": "A1"}, headers={"CST": "c", "X-SECURITY-TOKEN": "x"}
            )
        if self.expired:
            return httpx.Response(401, json={"errorCode": "error.invalid.session.token"})
        if (request.method, path) == ("PUT", "/session"):
            target = json.loads(request.content)["accountId"]
            if target == self.active:
                return httpx.Response(400, json={"errorCode": "error.not-different.accountId"})
            self.active = target
            return httpx.Response(200, json={})
        if self.expire_at_next_history:
            self.expire_at_next_history = False
            self.expired = True
            return httpx.Response(401, json={"errorCode": "error.invalid.session.token"})
        if self.latency:
            time.sleep(self.latency)
        key = {"/history/transactions": "transactions", "/history/activity": "activities"}[path]
        time_field = "dateUtc" if key == "transactions" else "dateUTC"
        start = datetime.strptime(params["from"], FMT).replace(tzinfo=UTC)
        end = datetime.strptime(params["to"], FMT).replace(tzinfo=UTC)
        if key == "activities":
            assert params["detailed"] == "true"
            if end - start > timedelta(days=1):
                return httpx.Response(400, json={"errorCode": "error.invalid.daterange"})
        with self.lock:
            failing = self.fail_times.get(params["from"], 0)
            if failing:
                self.fail_times[params["from"]] = failing - 1
        if failing:
            return httpx.Response(503, json={"errorCode": "error.service.unavailable"})
        if params["from"] in self.fail_from:
            return httpx.Response(503)

        def inside(row):
            ts = datetime.fromisoformat(row[time_field]).replace(tzinfo=UTC)
            low = start < ts if self.mode == "from_open" else start <= ts
            high = ts < end if self.mode == "to_open" else ts <= end
            return low and high

        selected = [r for r in self.rows.get(self.active, {}).get(key, []) if inside(r)]
        selected.sort(key=lambda r: r[time_field], reverse=True)  # newest first, like the API
        if self.cap is not None:
            selected = selected[: self.cap]
        selected += self.extra.get(params["from"], [])
        body = json.dumps({key: selected}, default=str)
        return httpx.Response(200, content=body.encode())


def make_client(api: HistoryApi, rate: float = 1000.0, **kw) -> CapitalClient:
    return CapitalClient(
        "http://capital.test",
        "history-key",
        "me@example.com",
        "pw",
        transport=httpx.MockTransport(api),
        rate_limiter=kw.pop("rate_limiter", None) or RateLimiter(rate),
        login_limiter=RateLimiter(1000),
        sleep=lambda s: None,
        rate_limit=rate,
        **kw,
    )


def history_calls(api: HistoryApi) -> list[dict]:
    return [params for _, path, params in api.calls if path.startswith("/history")]


def fetch_history(*args, **kwargs):
    """The fetcher without its start-edge probe: these tests count the planned windows only."""
    return _history.fetch_history(*args, edge_probe=False, **kwargs)


@pytest.mark.parametrize("mode", ["closed", "from_open", "to_open"])
def test_boundary_row_is_kept_once_whatever_the_inclusivity(mode):
    midnight = T0 + timedelta(days=1)
    rows = [
        tx("1", T0 + timedelta(hours=5)),
        tx("2", midnight),
        tx("3", midnight + timedelta(hours=1)),
    ]
    api = HistoryApi({"A1": {"transactions": rows}}, mode=mode)
    result = fetch_history(make_client(api), "A1", TRANSACTIONS, T0, T0 + timedelta(days=2))
    assert [r.reference for r in result.rows] == ["1", "2", "3"]
    assert result.keys == [("1",), ("2",), ("3",)]
    assert result.problems == [] and result.gaps() == []
    assert all(r.outcome == COMPLETE for r in result.records)
    assert len(result.records) == 2


def test_identical_activity_rows_in_one_window_are_all_kept():
    when = T0 + timedelta(hours=3)
    midnight = T0 + timedelta(days=1)
    rows = [act("d1", when), act("d1", when), act("d1", midnight), act("d1", midnight)]
    rows.append(act("d1", when, source="SYSTEM"))
    api = HistoryApi({"A1": {"activities": rows}})
    result = fetch_history(make_client(api), "A1", ACTIVITY, T0, T0 + timedelta(days=2))
    # Two identical rows at 03:00, two identical rows exactly at midnight (seen by both windows),
    # one row differing only in source.
    assert len(result.rows) == 5
    assert [k[-1] for k in result.keys if k[0] == midnight] == [0, 1]
    assert sorted(r.source for r in result.rows if r.date_utc == when) == ["SYSTEM", "USER", "USER"]
    assert all(r.details.size == Decimal(1) for r in result.rows)
    sent = history_calls(api)
    assert sent[0]["detailed"] == "true"
    assert {(p["from"], p["to"]) for p in sent} == {
        ("2026-07-01T00:00:00", "2026-07-02T00:00:00"),
        ("2026-07-02T00:00:00", "2026-07-03T00:00:00"),
    }


def test_rows_are_sorted_and_records_describe_windows():
    rows = [tx(str(i), T0 + timedelta(hours=i * 5)) for i in range(10)]
    api = HistoryApi({"A1": {"transactions": rows}})
    seen = []
    result = fetch_history(
        make_client(api), "A1", TRANSACTIONS, T0, T0 + timedelta(days=2), on_window=seen.append
    )
    assert [r.reference for r in result.rows] == [str(i) for i in range(10)]
    assert sorted(seen, key=lambda r: r.window_start) == result.records
    first = result.records[0]
    assert first.params == {"from": "2026-07-01T00:00:00", "to": "2026-07-02T00:00:00"}
    assert first.http_status == 200 and first.attempts == 1 and first.relogins == 0
    assert first.row_count == 5 and first.ids == ("0", "1", "2", "3", "4")
    assert first.min_ts == T0 and first.max_ts == T0 + timedelta(hours=20)
    assert len(first.body_sha256) == 64 and first.duration_s >= 0
    assert first.endpoint == "transactions" and first.account_id == "A1"
    assert first.window == Window(T0, T0 + timedelta(days=1)) and first.parent is None


def test_truncated_windows_are_split_until_complete():
    rows = [tx(str(i), T0 + timedelta(minutes=7 * i)) for i in range(200)]  # ~23 hours
    api = HistoryApi({"A1": {"transactions": rows}})
    api.cap = 50  # the API silently returns at most 50 rows
    result = fetch_history(
        make_client(api), "A1", TRANSACTIONS, T0, T0 + timedelta(days=1), split_threshold=50
    )
    assert sorted(r.reference for r in result.rows) == sorted(str(i) for i in range(200))
    assert result.gaps() == [] and result.failed == []
    parents = [r for r in result.records if r.outcome == SPLIT]
    assert parents[0].window == Window(T0, T0 + timedelta(days=1)) and parents[0].parent is None
    children = [r for r in result.records if r.parent == parents[0].window]
    assert len(children) == 2
    assert all(r.row_count < 50 for r in result.records if r.outcome == COMPLETE)


def test_the_clients_split_threshold_applies_when_the_caller_names_none():
    rows = [tx(str(i), T0 + timedelta(minutes=7 * i)) for i in range(200)]
    api = HistoryApi({"A1": {"transactions": rows}})
    api.cap = 50
    client = make_client(api, split_threshold=50)
    result = fetch_history(client, "A1", TRANSACTIONS, T0, T0 + timedelta(days=1))
    assert len(result.rows) == 200 and result.gaps() == []
    assert any(r.outcome == SPLIT for r in result.records)
    # At the default threshold the same capped answers look whole: that is what it cannot see.
    blind = fetch_history(make_client(api), "A1", TRANSACTIONS, T0, T0 + timedelta(days=1))
    assert len(blind.rows) == 50 and not any(r.outcome == SPLIT for r in blind.records)


def test_window_that_cannot_be_split_fails_and_leaves_a_gap():
    burst = T0 + timedelta(hours=2)
    rows = [tx(str(i), burst + timedelta(milliseconds=i)) for i in range(30)]
    rows.append(tx("later", T0 + timedelta(hours=20)))
    api = HistoryApi({"A1": {"transactions": rows}})
    api.cap = 10
    result = fetch_history(
        make_client(api), "A1", TRANSACTIONS, T0, T0 + timedelta(days=1), split_threshold=10
    )
    failed = result.failed
    assert failed and all("WindowSplitError" in (r.error or "") for r in failed)
    assert all(r.window.span <= timedelta(seconds=1) for r in failed)
    assert result.gaps() == [Window(burst, burst + timedelta(seconds=1))]
    assert "later" in {r.reference for r in result.rows}


def test_failed_window_is_recorded_and_reported_as_gap():
    rows = [tx("a", T0 + timedelta(hours=1)), tx("b", T0 + timedelta(days=1, hours=1))]
    api = HistoryApi({"A1": {"transactions": rows}})
    api.fail_from = {"2026-07-01T00:00:00"}
    client = make_client(api, max_attempts=3)
    result = fetch_history(client, "A1", TRANSACTIONS, T0, T0 + timedelta(days=2))
    assert [r.reference for r in result.rows] == ["b"]
    [failed] = result.failed
    assert failed.outcome == FAILED and failed.http_status == 503 and failed.attempts == 3
    assert failed.error.startswith("TransientError: GET /history/transactions -> 503")
    assert result.gaps() == [Window(T0, T0 + timedelta(days=1))]


def test_a_window_that_failed_transiently_is_fetched_again_after_all_the_others():
    days = [T0 + timedelta(days=d, hours=1) for d in range(3)]
    api = HistoryApi({"A1": {"transactions": [tx(str(d), at) for d, at in enumerate(days)]}})
    api.fail_times = {"2026-07-01T00:00:00": 3}  # three 503s: one pass of three attempts
    client = make_client(api, max_attempts=3)
    result = fetch_history(client, "A1", TRANSACTIONS, T0, T0 + timedelta(days=3), max_workers=1)
    assert [r.reference for r in result.rows] == ["0", "1", "2"] and result.gaps() == []
    first = Window(T0, T0 + timedelta(days=1))
    mine = [r for r in result.records if r.window == first]
    assert [(r.outcome, r.attempts) for r in mine] == [(RETRIED, 3), (COMPLETE, 1)]
    assert result.failed == [] and "503" in (mine[0].error or "")
    # The second try came after every other window had been asked for.
    asked = [p["from"] for m, path, p in api.calls if path.startswith("/history/")]
    assert asked[-1] == "2026-07-01T00:00:00" and asked.count("2026-07-01T00:00:00") == 4
    assert set(asked[:-1]) == {"2026-07-01T00:00:00", "2026-07-02T00:00:00",
                               "2026-07-03T00:00:00"}  # fmt: skip


def test_a_window_too_dense_to_split_gets_no_second_pass():
    api = HistoryApi({"A1": {"transactions": []}})  # every answer reaches a threshold of 0 rows
    client = make_client(api)
    result = fetch_history(
        client, "A1", TRANSACTIONS, T0, T0 + timedelta(seconds=1), split_threshold=0
    )  # fmt: skip
    assert result.failed and all("WindowSplitError" in (r.error or "") for r in result.failed)
    assert not any(r.outcome == RETRIED for r in result.records)
    assert len([c for c in api.calls if c[1].startswith("/history/")]) == len(result.records)


def test_out_of_window_and_bad_rows_become_problems():
    good = tx("good", T0 + timedelta(hours=1))
    bad = {**tx("bad", T0 + timedelta(hours=2)), "size": "twelve"}
    stray = tx("stray", T0 + timedelta(days=5))
    api = HistoryApi({"A1": {"transactions": [good, bad]}})
    api.extra = {"2026-07-01T00:00:00": [stray]}
    result = fetch_history(make_client(api), "A1", TRANSACTIONS, T0, T0 + timedelta(days=1))
    assert [r.reference for r in result.rows] == ["good"]
    reasons = sorted(p.reason for p in result.problems)
    assert len(reasons) == 2
    assert any(r.startswith("dateUtc 2026-07-06") and "outside window" in r for r in reasons)
    assert any("size" in r for r in reasons)
    assert result.records[0].row_count == 3 and result.records[0].ids == ("good",)


def test_conflicting_duplicate_reference_is_reported():
    when = T0 + timedelta(hours=1)
    api = HistoryApi({"A1": {"transactions": [tx("r", when, "1.0"), tx("r", when, "2.0")]}})
    result = fetch_history(make_client(api), "A1", TRANSACTIONS, T0, T0 + timedelta(days=1))
    assert len(result.rows) == 1
    assert len(result.problems) == 1 and "conflicting rows" in result.problems[0].reason


def test_switches_account_and_serializes_accounts():
    when = T0 + timedelta(hours=1)
    api = HistoryApi(
        {
            "A1": {"transactions": [tx("one", when)]},
            "A2": {"transactions": [tx("two", when)]},
        }
    )
    api.latency = 0.005
    client = make_client(api)
    results = {}

    def run(account):
        results[account] = fetch_history(client, account, TRANSACTIONS, T0, T0 + timedelta(days=6))

    threads = [threading.Thread(target=run, args=(a,)) for a in ("A2", "A1", "A2", "A1")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.reference for r in results["A1"].rows] == ["one"]
    assert [r.reference for r in results["A2"].rows] == ["two"]


def test_relogin_during_fetch_restores_account():
    when = T0 + timedelta(hours=1)
    api = HistoryApi({"A1": {"transactions": []}, "A2": {"transactions": [tx("two", when)]}})
    api.expire_at_next_history = True  # the session dies; the new login activates A1
    client = make_client(api)
    result = fetch_history(client, "A2", TRANSACTIONS, T0, T0 + timedelta(days=1))
    assert [r.reference for r in result.rows] == ["two"]
    assert result.records[0].relogins == 1 and result.records[0].attempts == 2
    sequence = [f"{m} {p}" for m, p, _ in api.calls]
    assert sequence == [
        "POST /session",
        "PUT /session",
        "GET /history/transactions",
        "POST /session",
        "PUT /session",
        "GET /history/transactions",
    ]


def test_authentication_failure_aborts_the_fetch():
    api = HistoryApi({"A1": {"transactions": []}})
    client = make_client(api)
    client.login()

    original = api.__call__

    def handler(request):
        if request.url.path.endswith("/session") and request.method == "POST":
            return original(request)
        return httpx.Response(401, json={"errorCode": "error.invalid.session.token"})

    client._http._transport = httpx.MockTransport(handler)
    with pytest.raises(AuthenticationError):
        fetch_history(client, "A1", TRANSACTIONS, T0, T0 + timedelta(days=3))


def test_concurrent_fetch_overlaps_requests_and_never_exceeds_the_rate():
    """The behaviour behind throughput (measured in benchmarks/fetch.py, not here): windows are
    requested concurrently, and the shared limiter never lets more than `rate` start per second."""
    rate, days, overlap = 20.0, 40, 4
    clock_lock = threading.Lock()
    clock = {"now": 100.0}

    def monotonic() -> float:
        with clock_lock:
            return clock["now"]

    def sleep(seconds: float) -> None:
        with clock_lock:
            clock["now"] += max(0.0, seconds)

    starts: list[float] = []

    class RecordingLimiter(RateLimiter):
        def acquire(self) -> float:
            start = super().acquire()
            with clock_lock:
                starts.append(start)
            return start

    api = HistoryApi({"A1": {"transactions": []}})
    state = {"in_flight": 0, "peak": 0, "gave_up": False}
    changed = threading.Condition()

    def handler(request: httpx.Request) -> httpx.Response:
        if not request.url.path.startswith("/api/v1/history/"):
            return api(request)
        with changed:
            state["in_flight"] += 1
            state["peak"] = max(state["peak"], state["in_flight"])
            changed.notify_all()
            # Hold the first answers until `overlap` requests are in flight at once; a client
            # that waited for each answer before sending the next would never get there.
            if not state["gave_up"]:
                state["gave_up"] = not changed.wait_for(lambda: state["peak"] >= overlap, 10)
        try:
            return api(request)
        finally:
            with changed:
                state["in_flight"] -= 1

    limiter = RecordingLimiter(rate, monotonic=monotonic, sleep=sleep)
    client = make_client(handler, rate=rate, rate_limiter=limiter)  # type: ignore[arg-type]
    result = fetch_history(client, "A1", TRANSACTIONS, T0, T0 + timedelta(days=days))
    assert len(result.records) == days and result.gaps() == []
    assert state["peak"] >= overlap
    starts.sort()
    assert len(starts) >= days
    assert all(b - a >= 1 / rate - 1e-9 for a, b in itertools.pairwise(starts))
    assert max(sum(1 for s in starts if t <= s < t + 1.0) for t in starts) <= rate


def test_a_row_exactly_at_the_range_start_survives_an_exclusive_from():
    """With `from` exclusive, only the edge probe sees a row stamped exactly at the start."""
    rows = [tx("1", T0), tx("2", T0 + timedelta(hours=2))]
    api = HistoryApi({"A1": {"transactions": rows}}, mode="from_open")
    with_probe = _history.fetch_history(
        make_client(api), "A1", TRANSACTIONS, T0, T0 + timedelta(days=1)
    )
    assert [r.reference for r in with_probe.rows] == ["1", "2"]
    assert with_probe.gaps() == []
    api = HistoryApi({"A1": {"transactions": rows}}, mode="from_open")
    without = _history.fetch_history(
        make_client(api), "A1", TRANSACTIONS, T0, T0 + timedelta(days=1), edge_probe=False
    )
    assert [r.reference for r in without.rows] == ["2"]
