import base64
import json
import logging
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ledger_etl.capital import (
    ApiError,
    AuthenticationError,
    CapitalClient,
    MalformedResponseError,
    RateLimitedError,
    TransientError,
    encrypt_password,
)
from ledger_etl.capital.ratelimit import RateLimiter
from ledger_etl.settings import CapitalSettings, SettingsError, capital_settings

API_KEY = "unit-api-key"
IDENTIFIER = "me@example.com"
PASSWORD = "unit-password"


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        """The client's backoff sleeps (recorded)."""
        with self._lock:
            self.sleeps.append(seconds)
            self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        """The limiters' pacing sleeps (not recorded)."""
        with self._lock:
            self.now += max(0.0, seconds)


Route = Callable[[httpx.Request, "FakeApi"], httpx.Response]


def error(status: int, code: str) -> httpx.Response:
    return httpx.Response(status, json={"errorCode": code})


class FakeApi:
    """Session endpoints with rotating tokens; everything else goes to `route`."""

    def __init__(self, route: Route | None = None, *, preferred: str = "A1") -> None:
        self.route = route or (lambda request, api: httpx.Response(200, json={"status": "OK"}))
        self.preferred = preferred
        self.active = preferred
        self.logins = 0
        self.cst: str | None = None
        self.calls: list[tuple[str, str, dict]] = []
        self.lock = threading.Lock()
        self.login_bodies: list[dict] = []
        self.login_response: Callable[[], httpx.Response] | None = None

    def expire(self) -> None:
        with self.lock:
            self.cst = "expired-and-gone"

    def tokens(self) -> dict[str, str]:
        return {"CST": self.cst, "X-SECURITY-TOKEN": f"x-{self.cst}"}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1")
        with self.lock:
            self.calls.append((request.method, path, dict(request.url.params)))
        if (request.method, path) == ("POST", "/session"):
            assert request.headers["X-CAP-API-KEY"] == API_KEY
            if self.login_response is not None:
                return self.login_response()
            with self.lock:
                self.login_bodies.append(json.loads(request.content))
                self.logins += 1
                self.cst = f"cst-{self.logins}"
                self.active = self.preferred
                body = {
                    "currentAccountId": self.preferred,
                    "accounts": [{"accountId": "A1", "preferred": True}, {"accountId": "A2"}],
                    "clientId": "c1",
                    "timezoneOffset": 3,
                }
                return httpx.Response(200, json=body, headers=self.tokens())
        if path == "/time":
            return httpx.Response(200, json={"serverTime": 1649259764171})
        if path == "/session/encryptionKey":
            return self.route(request, self)
        if (
            request.headers.get("CST") != self.cst
            or request.headers.get("X-SECURITY-TOKEN") != f"x-{self.cst}"
        ):
            return error(401, "error.invalid.session.token")
        if (request.method, path) == ("PUT", "/session"):
            target = json.loads(request.content)["accountId"]
            with self.lock:
                if target == self.active:
                    return error(400, "error.not-different.accountId")
                if target not in ("A1", "A2"):
                    return error(400, "error.invalid.accountId")
                self.active = target
            return httpx.Response(200, json={"dealingEnabled": True})
        if (request.method, path) == ("DELETE", "/session"):
            return httpx.Response(200, json={"status": "SUCCESS"})
        return self.route(request, self)

    def paths(self) -> list[str]:
        return [f"{m} {p}" for m, p, _ in self.calls]


def make_client(api: FakeApi, clock: FakeClock | None = None, **kw) -> CapitalClient:
    clock = clock or FakeClock()
    kw.setdefault("rate_limiter", RateLimiter(1000, monotonic=clock.monotonic, sleep=clock.advance))
    kw.setdefault("login_limiter", RateLimiter(1, monotonic=clock.monotonic, sleep=clock.advance))
    return CapitalClient(
        "http://capital.test/",
        API_KEY,
        IDENTIFIER,
        PASSWORD,
        transport=httpx.MockTransport(api),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        rng=random.Random(3),
        **kw,
    )


def scripted(*responses) -> Route:
    """A route answering with the given responses (or raising given exceptions) in turn."""
    queue = list(responses)

    def route(request, api):
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return route


OK = httpx.Response(200, json={"status": "OK"})


# --- login, tokens, session ---


def test_lazy_login_and_token_headers():
    api = FakeApi()
    client = make_client(api)
    assert client.ping() == {"status": "OK"}
    assert api.paths() == ["POST /session", "GET /ping"]
    assert api.login_bodies == [
        {"identifier": IDENTIFIER, "password": PASSWORD, "encryptedPassword": False}
    ]
    assert client.active_account_id == "A1"
    assert client.stats.snapshot()["logins"] == 1


def test_base_url_and_timeouts():
    seen = []
    api = FakeApi(lambda request, api: seen.append(str(request.url)) or OK)
    client = make_client(api, connect_timeout=2.0, read_timeout=9.0)
    client.request("GET", "/history/activity", params={"from": "2026-07-01T00:00:00"})
    assert seen == ["http://capital.test/api/v1/history/activity?from=2026-07-01T00%3A00%3A00"]
    timeout = client._http.timeout
    assert timeout.connect == 2.0 and timeout.read == 9.0


def test_adopts_tokens_from_any_response():
    def route(request, api):
        with api.lock:
            api.cst = "rotated"
        return httpx.Response(200, json={"status": "OK"}, headers=api.tokens())

    api = FakeApi(route)
    client = make_client(api)
    client.ping()
    api.route = lambda request, api: OK
    client.ping()  # would be 401 if the rotated tokens were not adopted
    assert api.logins == 1


def test_login_without_token_headers_is_malformed():
    api = FakeApi()
    api.login_response = lambda: httpx.Response(200, json={"currentAccountId": "A1"})
    client = make_client(api, max_attempts=2)
    with pytest.raises(MalformedResponseError, match="no session token headers"):
        client.login()


def test_bad_credentials_raise_authentication_error_without_retry():
    api = FakeApi()
    api.login_response = lambda: error(401, "error.invalid.details")
    client = make_client(api)
    with pytest.raises(AuthenticationError) as caught:
        client.ping()
    assert caught.value.error_code == "error.invalid.details"
    assert str(caught.value) == "POST /session -> 401 error.invalid.details"
    assert api.paths() == ["POST /session"]


def test_encrypted_login_round_trip():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_b64 = base64.b64encode(der).decode()

    def route(request, api):
        assert request.headers["X-CAP-API-KEY"] == API_KEY
        return httpx.Response(200, json={"encryptionKey": key_b64, "timeStamp": 1649058606014})

    api = FakeApi(route)
    client = make_client(api, encrypted_password=True)
    client.login()
    sent = api.login_bodies[0]
    assert sent["encryptedPassword"] is True and sent["password"] != PASSWORD
    plain = private.decrypt(base64.b64decode(sent["password"]), padding.PKCS1v15())
    assert plain == base64.b64encode(f"{PASSWORD}|1649058606014".encode())
    assert base64.b64decode(plain).decode().rsplit("|", 1) == [PASSWORD, "1649058606014"]


def test_encrypt_password_function():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    cipher = encrypt_password("p|w", base64.b64encode(der).decode(), 42)
    plain = private.decrypt(base64.b64decode(cipher), padding.PKCS1v15())
    assert base64.b64decode(plain) == b"p|w|42"
    with pytest.raises(ValueError, match="public key"):
        encrypt_password("pw", "not base64!", 1)


def test_switch_account_and_not_different_is_success():
    api = FakeApi()
    client = make_client(api)
    client.switch_account("A2")
    assert api.active == "A2" and client.active_account_id == "A2"
    client.switch_account("A2")  # 400 error.not-different.accountId
    assert client.active_account_id == "A2"
    with pytest.raises(ApiError) as caught:
        client.switch_account("ZZ")
    assert caught.value.error_code == "error.invalid.accountId"


def test_context_manager_logs_out_and_closes():
    api = FakeApi()
    with make_client(api) as client:
        client.ping()
    assert api.paths()[-1] == "DELETE /session"
    assert client._http.is_closed
    with make_client(FakeApi()):
        pass  # never logged in: nothing to log out


def test_logout_failure_is_swallowed(caplog):
    api = FakeApi()
    client = make_client(api)
    client.ping()
    api.route = scripted(httpx.Response(503))

    def failing_delete(request):
        if request.method == "DELETE":
            return httpx.Response(503)
        return api(request)

    client._http._transport = httpx.MockTransport(failing_delete)
    with caplog.at_level(logging.WARNING, logger="ledger_etl.capital"):
        client.__exit__(None, None, None)
    assert "logout failed" in caplog.text


def test_server_time_and_accounts():
    def route(request, api):
        return httpx.Response(
            200,
            content=b'{"accounts": [{"accountId": "A1", "balance": {"balance": 92.89}}]}',
        )

    client = make_client(FakeApi(route))
    assert client.server_time() == datetime(2022, 4, 6, 15, 42, 44, 171000, tzinfo=UTC)
    accounts = client.accounts()
    assert accounts[0].account_id == "A1" and accounts[0].balance.balance == Decimal("92.89")


def test_from_settings():
    settings = CapitalSettings(
        api_url=None, api_key="k", identifier="i", password="p", rate_limit=4.0
    )
    with pytest.raises(ValueError):
        CapitalClient.from_settings(settings)
    client = CapitalClient.from_settings(settings, base_url="http://127.0.0.1:8765")
    assert client.base_url == "http://127.0.0.1:8765" and client.rate_limit == 4.0
    assert repr(client) == "CapitalClient(base_url='http://127.0.0.1:8765', identifier='i')"
    client.close()


def test_a_closed_client_leaves_the_shared_pace_of_its_key():
    """Clients of one API key share a pace; a slow one, once closed, no longer slows others."""
    slow = CapitalClient("http://127.0.0.1:8765", "pace-key", "i", "p", rate_limit=2.0)
    fast = CapitalClient("http://127.0.0.1:8765", "pace-key", "i", "p", rate_limit=400.0)
    assert fast._limiter is slow._limiter and fast._limiter.rate == 2.0
    slow.close()
    slow.close()  # closing twice releases once
    assert fast._limiter.rate == 400.0
    fast.close()


def test_split_threshold_from_the_environment():
    assert capital_settings({}).split_threshold == 1000
    settings = capital_settings({"CAPITAL_SPLIT_THRESHOLD": "250"})
    client = CapitalClient.from_settings(settings, base_url="http://127.0.0.1:8765")
    assert client.split_threshold == 250
    client.close()
    for bad in ("0", "-3", "many", "1.5"):
        with pytest.raises(SettingsError, match="CAPITAL_SPLIT_THRESHOLD"):
            capital_settings({"CAPITAL_SPLIT_THRESHOLD": bad})


# --- retry policy ---


def test_5xx_on_read_is_retried_then_succeeds():
    clock = FakeClock()
    api = FakeApi(scripted(httpx.Response(503), httpx.Response(502), OK))
    client = make_client(api, clock)
    response = client.request("GET", "/ping")
    assert response.attempts == 3 and response.status == 200
    assert len(clock.sleeps) == 2
    assert 0 <= clock.sleeps[0] <= 0.5 and 0 <= clock.sleeps[1] <= 1.0
    assert client.stats.snapshot()["retries"] == 2


def test_5xx_gives_up_after_max_attempts():
    api = FakeApi(scripted(error(503, "error.service.unavailable")))
    client = make_client(api, max_attempts=4)
    with pytest.raises(TransientError) as caught:
        client.request("GET", "/positions")
    assert caught.value.attempts == 4 and caught.value.status == 503
    assert str(caught.value) == "GET /positions -> 503 error.service.unavailable after 4 attempts"


def test_retry_time_budget_is_bounded():
    clock = FakeClock()
    api = FakeApi(scripted(httpx.Response(500)))
    client = make_client(api, clock, max_attempts=100, max_retry_seconds=5.0, backoff_base=2.0)
    with pytest.raises(TransientError):
        client.request("GET", "/ping")
    assert sum(clock.sleeps) <= 5.0


def test_5xx_on_write_is_not_retried():
    api = FakeApi(scripted(httpx.Response(500), OK))
    client = make_client(api)
    with pytest.raises(TransientError) as caught:
        client.request("POST", "/positions", json={"epic": "GOLD"})
    assert caught.value.attempts == 1


def test_retry_reads_false_disables_transient_retries():
    api = FakeApi(scripted(httpx.Response(500), OK))
    client = make_client(api)
    with pytest.raises(TransientError):
        client.request("GET", "/ping", retry_reads=False)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.ConnectTimeout("timed out"),
        httpx.RemoteProtocolError("peer closed connection"),
        httpx.ReadError("connection reset by peer"),
    ],
)
def test_transport_errors_are_retried_for_reads(failure):
    api = FakeApi(scripted(failure, OK))
    client = make_client(api)
    assert client.request("GET", "/ping").attempts == 2
    api2 = FakeApi(scripted(failure))
    with pytest.raises(TransientError) as caught:
        make_client(api2, max_attempts=3).request("GET", "/ping")
    assert caught.value.attempts == 3 and type(failure).__name__ in str(caught.value)
    api3 = FakeApi(scripted(failure, OK))
    with pytest.raises(TransientError):
        make_client(api3).request("DELETE", "/positions/1")


def test_429_backs_off_even_for_writes_and_pauses_the_limiter():
    clock = FakeClock()
    limiter = RateLimiter(1000, monotonic=clock.monotonic, sleep=clock.advance)
    api = FakeApi(scripted(error(429, "error.too-many.requests"), OK))
    client = make_client(api, clock, rate_limiter=limiter)
    client.login()
    before = clock.now
    client.request("POST", "/positions", json={})
    assert clock.now - before >= 1.0  # the shared limiter held the replay back a full second
    assert client.stats.snapshot()["rate_limited"] == 1


def test_429_exhausted_raises_rate_limited():
    api = FakeApi(scripted(error(429, "error.too-many.requests")))
    client = make_client(api, max_attempts=3)
    with pytest.raises(RateLimitedError) as caught:
        client.request("GET", "/ping")
    assert caught.value.attempts == 3 and caught.value.status == 429
    assert client.stats.snapshot()["rate_limited"] == 3


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "error.invalid.daterange"), (404, "error.not-found.epic"), (400, None)],
)
def test_other_4xx_fail_at_once(status, code):
    response = error(status, code) if code else httpx.Response(status, text="nope")
    api = FakeApi(scripted(response, OK))
    client = make_client(api)
    with pytest.raises(ApiError) as caught:
        client.request("GET", "/history/activity", params={"from": "2026-07-01T00:00:00"})
    assert caught.value.status == status and caught.value.error_code == code
    assert caught.value.attempts == 1 and caught.value.path == "/history/activity"
    if code:
        assert str(caught.value) == f"GET /history/activity -> {status} {code}"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "not JSON"),
        (b'{"activities": [{"dateUTC": "2026-07-', "not JSON"),
        (b'{"other": []}', "no 'activities' key"),
        (b"[]", "not an object"),
        (b"", "not JSON"),
    ],
)
def test_malformed_200_is_retried_then_raised(body, reason):
    api = FakeApi(scripted(httpx.Response(200, content=body)))
    client = make_client(api, max_attempts=3)
    with pytest.raises(MalformedResponseError) as caught:
        client.request("GET", "/history/activity", expect_key="activities")
    assert reason in str(caught.value) and caught.value.attempts == 3
    assert body.decode() not in str(caught.value) or not body
    assert len(caught.value.body_sha256) == 12


def test_malformed_then_good_recovers():
    good = httpx.Response(200, json={"activities": []})
    api = FakeApi(scripted(httpx.Response(200, text="<html>"), good))
    response = make_client(api).request("GET", "/history/activity", expect_key="activities")
    assert response.body == {"activities": []} and response.attempts == 2


def test_bodies_parse_floats_as_decimal():
    api = FakeApi(scripted(httpx.Response(200, content=b'{"level": 75.31, "n": 1}')))
    body = make_client(api).request("GET", "/x").body
    assert body == {"level": Decimal("75.31"), "n": 1}


# --- session expiry ---


def test_expired_session_relogs_once_and_replays():
    api = FakeApi()
    client = make_client(api)
    client.ping()
    api.expire()
    response = client.request("GET", "/ping")
    assert response.relogins == 1 and response.attempts == 2
    assert api.logins == 2
    assert client.stats.snapshot()["relogins"] == 1


def test_two_expiries_in_a_row_raise_authentication_error():
    api = FakeApi(scripted(error(401, "error.invalid.session.token")))
    client = make_client(api)
    with pytest.raises(AuthenticationError) as caught:
        client.request("GET", "/ping")
    assert caught.value.error_code == "error.invalid.session.token"
    assert api.logins == 2


def test_relogin_restores_the_switched_account():
    def route(request, api):
        return httpx.Response(200, json={"active": api.active})

    api = FakeApi(route)
    client = make_client(api)
    client.switch_account("A2")
    api.expire()
    response = client.request("GET", "/whoami")
    assert response.body == {"active": "A2"}
    tail = api.paths()[-4:]
    assert tail == ["GET /whoami", "POST /session", "PUT /session", "GET /whoami"]


def test_login_is_paced_to_one_per_second():
    clock = FakeClock()
    api = FakeApi()
    client = make_client(api, clock)
    client.login()
    first = clock.now
    client.login()
    assert clock.now - first >= 1.0 - 1e-6


def test_single_flight_relogin_with_eight_threads():
    threads_n = 8
    barrier = threading.Barrier(threads_n, timeout=10)
    gate = {"expired_seen": 0}

    def route(request, api):
        return httpx.Response(200, json={"ok": True})

    api = FakeApi(route)
    client = make_client(api)
    client.ping()
    api.expire()
    real_call = api.__call__

    def handler(request):
        response = real_call(request)
        if response.status_code == 401:
            with api.lock:
                gate["expired_seen"] += 1
                wait = gate["expired_seen"] <= threads_n
            if wait:
                barrier.wait()  # every thread holds an expired answer before anyone re-logs
        return response

    client._http._transport = httpx.MockTransport(handler)
    results, errors = [], []

    def worker():
        try:
            results.append(client.request("GET", "/data"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not errors
    assert len(results) == threads_n and all(r.relogins == 1 for r in results)
    assert api.paths().count("POST /session") == 2  # the first login plus exactly one re-login
    assert client.stats.snapshot()["relogins"] == 1
