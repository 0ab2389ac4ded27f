"""A session that expires again while a request is being replayed after a re-login.

Under concurrency the replays of one expiry queue behind the rate limiter; a second expiry in
that time hits replays that already used their re-login. Those must log in again (the session
had worked: it expired, it was not refused), while a session refused from the start still ends
in `AuthenticationError` after exactly one re-login.
"""

import json
import random
import threading

import httpx
import pytest

from ledger_etl.capital import AuthenticationError, CapitalClient
from ledger_etl.capital.ratelimit import RateLimiter

EXPIRED = {"errorCode": "error.invalid.session.token"}


class ExpiringApi:
    """Sessions that die whenever `kill_before` says so for the request about to be served."""

    def __init__(self, kill_before=lambda request, api: False) -> None:
        self.kill_before = kill_before
        self.logins = 0
        self.live: str | None = None
        self.active = "A1"
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1")
        with self.lock:
            self.calls.append(f"{request.method} {path}")
            if (request.method, path) == ("POST", "/session"):
                self.logins += 1
                self.live, self.active = f"cst-{self.logins}", "A1"
                headers = {"CST": self.live, "X-SECURITY-TOKEN": "x"}
                return httpx.Response(200, json={"currentAccountId": "A1"}, headers=headers)
            if self.kill_before(request, self):
                self.live = None
            if request.headers.get("CST") != self.live or self.live is None:
                return httpx.Response(401, json=EXPIRED)
            if (request.method, path) == ("PUT", "/session"):
                target = json.loads(request.content)["accountId"]
                if target == self.active:
                    return httpx.Response(400, json={"errorCode": "error.not-different.accountId"})
                self.active = target
                return httpx.Response(200, json={})
            return httpx.Response(200, json={"active": self.active})


def make_client(api: ExpiringApi, **kw) -> CapitalClient:
    return CapitalClient(
        "http://capital.test",
        "relogin-key",
        "me@example.com",
        "pw",
        transport=httpx.MockTransport(api),
        rate_limiter=RateLimiter(1000),
        login_limiter=RateLimiter(1000),
        sleep=lambda s: None,
        rng=random.Random(1),
        **kw,
    )


def test_second_expiry_during_the_replay_logs_in_again():
    state = {"kills": 0}

    def kill_before(request, api):
        # The first GET /data finds its session dead, and so does its replay, which follows an
        # accepted PUT /session (the account restore) on the fresh session.
        if request.url.path.endswith("/data") and state["kills"] < 2:
            state["kills"] += 1
            return True
        return False

    api = ExpiringApi(kill_before)
    client = make_client(api)
    client.switch_account("A2")
    response = client.request("GET", "/data")
    assert response.body == {"active": "A2"}
    assert response.relogins == 2 and api.logins == 3
    assert client.stats.snapshot()["relogins"] == 2
    assert api.calls == [
        "POST /session", "PUT /session",
        "GET /data", "POST /session", "PUT /session",
        "GET /data", "POST /session", "PUT /session",
        "GET /data",
    ]  # fmt: skip


def test_a_session_refused_from_the_start_gets_one_relogin_only():
    api = ExpiringApi(lambda request, api: request.url.path.endswith("/data"))
    client = make_client(api)
    with pytest.raises(AuthenticationError):
        client.request("GET", "/data")
    assert api.logins == 2


def test_relogins_are_bounded_even_when_every_session_works_once():
    # Each fresh session is accepted for the account restore, then dies before the replay.
    api = ExpiringApi(lambda request, api: request.url.path.endswith("/data"))
    client = make_client(api, max_attempts=4)
    client.switch_account("A2")
    with pytest.raises(AuthenticationError):
        client.request("GET", "/data")
    assert api.logins == 1 + 4


def test_no_request_uses_a_fresh_session_before_its_account_is_restored():
    # While the re-login's PUT /session is on its way, the fresh session is still on the
    # platform's preferred account A1: a history request sent with it would read A1's rows.
    restoring, gate = threading.Event(), threading.Event()
    state = {"killed": False, "logins_seen": 0}

    def kill_before(request, api):
        path = request.url.path
        if path.endswith("/data") and not state["killed"]:
            state["killed"] = True
            return True
        if request.method == "PUT" and api.logins == 2:
            restoring.set()
            api.lock.release()  # let other requests reach the server meanwhile
            try:
                gate.wait(5)
            finally:
                api.lock.acquire()
        return False

    api = ExpiringApi(kill_before)
    client = make_client(api)
    client.switch_account("A2")
    answers: list[object] = []
    first = threading.Thread(target=lambda: answers.append(client.request("GET", "/data").body))
    first.start()
    assert restoring.wait(5)
    second = threading.Thread(target=lambda: answers.append(client.request("GET", "/data").body))
    second.start()
    second.join(0.3)  # the second request must wait for the restore, not go out now
    gate.set()
    first.join(5)
    second.join(5)
    assert answers == [{"active": "A2"}, {"active": "A2"}]


def test_a_fresh_session_that_dies_before_the_account_restore_logs_in_again():
    def kill_before(request, api):
        # The first GET finds its session dead; the second login's session dies at once.
        return (request.url.path.endswith("/data") and api.logins == 1) or (
            request.method == "PUT" and api.logins == 2
        )

    api = ExpiringApi(kill_before)
    client = make_client(api)
    client.switch_account("A2")
    assert client.request("GET", "/data").body == {"active": "A2"}
    assert api.calls == [
        "POST /session", "PUT /session",
        "GET /data", "POST /session", "PUT /session",
        "POST /session", "PUT /session",
        "GET /data",
    ]  # fmt: skip


class FlakyApi(ExpiringApi):
    """Also answers 503 to the requests `unavailable` picks."""

    def __init__(self, kill_before, unavailable) -> None:
        super().__init__(kill_before)
        self.unavailable = unavailable

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.unavailable(request, self):
            with self.lock:
                self.calls.append(f"{request.method} {request.url.path.removeprefix('/api/v1')}")
            return httpx.Response(503, json={"errorCode": "error.service.unavailable"})
        return super().__call__(request)


def test_a_replay_after_a_relogin_does_not_spend_the_retry_budget():
    # Two attempts allowed: the expiry's replay is not a failed answer, so after it one 503
    # can still be retried.
    gets = {"n": 0}

    def count_get(request):
        if request.url.path.endswith("/data"):
            gets["n"] += 1
        return gets["n"]

    api = FlakyApi(
        kill_before=lambda request, api: request.url.path.endswith("/data") and gets["n"] == 1,
        unavailable=lambda request, api: count_get(request) == 2,
    )
    client = make_client(api, max_attempts=2)
    client.switch_account("A2")
    response = client.request("GET", "/data")
    assert response.body == {"active": "A2"}
    assert (response.attempts, response.relogins) == (3, 1)
