"""Sessions, logins and rate limits of the simulator, over real HTTP."""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding

from tests.conftest import API_KEY, IDENTIFIER, PASSWORD, ApiSession, make_server


def _encrypt(password: str, key_b64: str, stamp: int) -> str:
    key = serialization.load_der_public_key(base64.b64decode(key_b64))
    inner = base64.b64encode(f"{password}|{stamp}".encode())
    return base64.b64encode(key.encrypt(inner, padding.PKCS1v15())).decode()  # type: ignore[union-attr]


def test_plain_login_returns_tokens_in_headers(api: ApiSession) -> None:
    response = api.login()
    body = response.json()
    assert response.headers["CST"] and response.headers["X-SECURITY-TOKEN"]
    assert (
        body["currentAccountId"] == next(a for a in api.accounts() if a["preferred"])["accountId"]
    )
    assert {a["accountId"] for a in body["accounts"]} == {a["accountId"] for a in api.accounts()}


def test_encrypted_password_login_works(api: ApiSession) -> None:
    key = api.http.get("/session/encryptionKey", headers={"X-CAP-API-KEY": API_KEY}).json()
    encrypted = _encrypt(PASSWORD, key["encryptionKey"], key["timeStamp"])
    response = api.http.post(
        "/session",
        json={"identifier": IDENTIFIER, "password": encrypted, "encryptedPassword": True},
        headers={"X-CAP-API-KEY": API_KEY},
    )
    assert response.status_code == 200, response.text
    assert "CST" in response.headers


def test_encrypted_login_with_wrong_password_or_garbage_is_rejected(api: ApiSession) -> None:
    key = api.http.get("/session/encryptionKey", headers={"X-CAP-API-KEY": API_KEY}).json()
    for password in (_encrypt("wrong", key["encryptionKey"], key["timeStamp"]), "bm90LXJzYQ=="):
        time.sleep(1.05)  # one login per second per key
        response = api.http.post(
            "/session",
            json={"identifier": IDENTIFIER, "password": password, "encryptedPassword": True},
            headers={"X-CAP-API-KEY": API_KEY},
        )
        assert (response.status_code, response.json()) == (
            401,
            {"errorCode": "error.invalid.details"},
        )


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({}, {"identifier": IDENTIFIER, "password": PASSWORD}, 400, "error.null.api.key"),
        (
            {"X-CAP-API-KEY": "other-key"},
            {"identifier": IDENTIFIER, "password": PASSWORD},
            400,
            "error.null.client.token",
        ),
        (
            {"X-CAP-API-KEY": API_KEY},
            {"identifier": IDENTIFIER, "password": "nope"},
            401,
            "error.invalid.details",
        ),
        (
            {"X-CAP-API-KEY": API_KEY},
            {"identifier": "x@example.com", "password": PASSWORD},
            401,
            "error.invalid.details",
        ),
    ],
)
def test_login_errors(api: ApiSession, headers: dict, body: dict, status: int, code: str) -> None:
    response = api.http.post("/session", json=body, headers=headers)
    assert response.status_code == status
    assert response.json() == {"errorCode": code}


def test_calls_without_or_with_bad_tokens(api: ApiSession) -> None:
    assert api.http.get("/accounts").json() == {"errorCode": "error.null.client.token"}
    response = api.http.get("/accounts", headers={"CST": "x", "X-SECURITY-TOKEN": "y"})
    assert (response.status_code, response.json()["errorCode"]) == (
        401,
        "error.invalid.session.token",
    )
    api.login()
    only_cst = {"CST": api.tokens["CST"]}
    assert api.http.get("/accounts", headers=only_cst).json()["errorCode"] == (
        "error.null.accountId"
    )


def test_authenticated_responses_echo_tokens(api: ApiSession) -> None:
    api.login()
    response = api.get("/ping")
    assert response.json() == {"status": "OK"}
    assert response.headers["CST"] == api.tokens["CST"]
    assert response.headers["X-SECURITY-TOKEN"] == api.tokens["X-SECURITY-TOKEN"]


def test_session_expires_after_ten_idle_minutes(api: ApiSession) -> None:
    # Frozen: only the advances below count. A first login that computes the world's balances
    # can take over a second on a loaded machine, which a running clock would add to the idle time.
    api.server.simulator.clock.freeze()
    api.login()
    api.server.simulator.clock.advance(599)
    assert api.get("/ping").status_code == 200  # use refreshes the idle timer
    api.server.simulator.clock.advance(599)
    assert api.get("/accounts").status_code == 200
    api.server.simulator.clock.advance(601)
    response = api.get("/accounts")
    assert (response.status_code, response.json()) == (
        401,
        {"errorCode": "error.invalid.session.token"},
    )


def test_idle_timeout_and_hard_cap_are_configurable() -> None:
    server = make_server(session_idle_seconds=60, session_max_age_seconds=100)
    api = ApiSession(server)
    try:
        api.login()
        server.simulator.clock.advance(61)
        assert api.get("/ping").status_code == 401
        time.sleep(1.05)
        api.login()
        for _ in range(3):
            server.simulator.clock.advance(25)
            assert api.get("/ping").status_code == 200
        server.simulator.clock.advance(30)  # 105 s after creation, idle for only 30 s
        assert api.get("/ping").status_code == 401
    finally:
        api.close()
        server.stop()


def test_get_put_delete_session(api: ApiSession) -> None:
    api.login()
    accounts = api.accounts()
    preferred = next(a for a in accounts if a["preferred"])["accountId"]
    other = next(a for a in accounts if not a["preferred"])["accountId"]
    assert api.get("/session").json()["accountId"] == preferred
    same = api.switch(preferred)
    assert (same.status_code, same.json()) == (400, {"errorCode": "error.not-different.accountId"})
    bad = api.switch("0000000000001")
    assert (bad.status_code, bad.json()) == (400, {"errorCode": "error.invalid.accountId"})
    switched = api.switch(other)
    assert switched.status_code == 200
    assert set(switched.json()) == {
        "trailingStopsEnabled",
        "dealingEnabled",
        "hasActiveDemoAccounts",
        "hasActiveLiveAccounts",
    }
    assert api.get("/session").json()["accountId"] == other
    closed = api.http.delete("/session", headers=api.tokens)
    assert closed.json() == {"status": "SUCCESS"}
    assert api.get("/session").status_code == 401


def test_rate_limit_ten_per_second_per_user(api: ApiSession) -> None:
    # Frozen before the login, so the login and the pings share one simulated second however
    # slowly a loaded machine gets from one to the next.
    api.server.simulator.clock.freeze()
    api.login()
    statuses = [api.get("/ping").status_code for _ in range(12)]
    # The login itself used one of the ten slots of this second.
    assert statuses.count(200) == 9
    assert statuses[9:] == [429, 429, 429]
    assert api.get("/ping").json() == {"errorCode": "error.too-many.requests"}
    api.server.simulator.clock.advance(1.0)
    assert api.get("/ping").status_code == 200


def test_rate_limit_counts_a_request_when_it_arrives_not_when_its_slow_answer_leaves(
    api: ApiSession,
) -> None:
    # Nine slow requests arrive in the login's simulated second; their answers come a second
    # later. The next second's ten requests are all within the limit: the slow ones were
    # counted when they arrived.
    clock = api.server.simulator.clock
    clock.freeze()
    api.login()
    rule = {"kind": "latency", "seconds": 1.5, "method": "GET", "path": "^/accounts$"}
    assert api.admin.put("/faults", json={"rules": [rule]}).status_code == 200
    with ThreadPoolExecutor(9) as pool:
        slow = [pool.submit(api.get, "/accounts") for _ in range(9)]
        time.sleep(0.5)  # all nine have arrived and are waiting out their latency
        clock.advance(1.0)
        assert [f.result().status_code for f in slow] == [200] * 9
    assert [api.get("/ping").status_code for _ in range(10)] == [200] * 10
    assert api.get("/ping").status_code == 429


def test_login_limit_one_per_second_per_key(api: ApiSession) -> None:
    api.server.simulator.clock.freeze()
    api.login()
    second = api.http.post(
        "/session",
        json={"identifier": IDENTIFIER, "password": PASSWORD},
        headers={"X-CAP-API-KEY": API_KEY},
    )
    assert (second.status_code, second.json()) == (429, {"errorCode": "error.too-many.requests"})
    api.server.simulator.clock.advance(1.0)
    api.login()


def test_limits_are_configurable() -> None:
    server = make_server(rate_limit_per_second=3)
    api = ApiSession(server)
    try:
        server.simulator.clock.freeze()
        api.login()
        statuses = [api.get("/ping").status_code for _ in range(4)]
        assert statuses == [200, 200, 429, 429]
    finally:
        api.close()
        server.stop()


def test_server_time_is_the_simulator_clock(api: ApiSession) -> None:
    stamp = api.http.get("/time").json()["serverTime"]
    assert abs(stamp / 1000 - api.server.simulator.clock.timestamp()) < 5


def test_unknown_path_and_method(api: ApiSession) -> None:
    api.login()
    assert api.get("/nope").status_code == 404
    assert api.http.patch("/session", headers=api.tokens).status_code == 405
    assert httpx.get(api.server.url + "/elsewhere").status_code == 404
