"""Bad input gets the reference's 4xx errorCode, never a crash, and the simulator keeps serving."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import API_KEY, IDENTIFIER, ApiSession

LOGIN_HEADERS = {"X-CAP-API-KEY": API_KEY, "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "error.malformed.body"),
        (b"[1, 2]", 400, "error.malformed.body"),
        (b"\xff\xfe", 400, "error.malformed.body"),
        (b'{"identifier": 5, "password": "x"}', 400, "error.invalid.details"),
        (b'{"identifier": "' + IDENTIFIER.encode() + b'"}', 400, "error.invalid.details"),
        (
            b'{"identifier": "a", "password": "b", "encryptedPassword": "yes"}',
            400,
            "error.invalid.details",
        ),
        (
            b'{"identifier": "a", "password": "@@@", "encryptedPassword": true}',
            401,
            "error.invalid.details",
        ),
        (b"x" * 70_000, 413, "error.request.too-large"),
    ],
)
def test_malformed_login_bodies(api: ApiSession, body: bytes, status: int, code: str) -> None:
    api.server.simulator.clock.advance(1.1)  # stay clear of the one-login-per-second limit
    response = api.http.post("/session", content=body, headers=LOGIN_HEADERS)
    assert (response.status_code, response.json()) == (status, {"errorCode": code})
    api.server.simulator.clock.advance(1.1)
    api.login()  # still serving


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"from": "2025-06-10T00:00:00", "to": "not-a-date"}, "error.invalid.to"),
        ({"from": "\x00\x01", "to": "2025-06-11T00:00:00"}, "error.invalid.from"),
        ({"from": "2025-06-10T00:00:00" * 500}, "error.invalid.from"),
        ({"lastPeriod": "1e3"}, "error.invalid.lastPeriod"),
        ({"lastPeriod": "9" * 400}, "error.invalid.lastPeriod"),
        ({"filter": ";;;==,,"}, "error.invalid.filter"),
        ({"filter": "epic==" + "A" * 5000 + ";type=POSITION"}, "error.invalid.filter"),
    ],
)
def test_malformed_history_queries(api: ApiSession, params: dict, code: str) -> None:
    api.login()
    response = api.get("/history/activity", **params)
    assert (response.status_code, response.json()) == (400, {"errorCode": code})
    assert api.get("/ping").status_code == 200


def test_malformed_session_switch_and_preferences(api: ApiSession) -> None:
    api.login()
    for body in (b"", b"{}", b'{"accountId": 12}', b'{"accountId": null}', b"[]"):
        response = api.http.put("/session", content=body, headers=api.tokens)
        assert response.status_code == 400, body
        assert response.json()["errorCode"] in ("error.invalid.accountId", "error.malformed.body")
    bad_leverage = api.http.put(
        "/accounts/preferences", json={"leverages": {"INDICES": 600}}, headers=api.tokens
    )
    assert bad_leverage.json() == {"errorCode": "error.invalid.leverage.value"}
    good = api.http.put(
        "/accounts/preferences", json={"leverages": {"SHARES": 5}}, headers=api.tokens
    )
    assert good.json() == {"status": "SUCCESS"}
    assert api.get("/accounts/preferences").json()["leverages"]["SHARES"]["current"] == 5


def test_unknown_ids_are_404s(api: ApiSession) -> None:
    api.login()
    assert api.get("/positions/nope").json() == {"errorCode": "error.not-found.dealId"}
    for ref in ("nope", "p_zz", "o_ffffffff-0000", "p_00000000-ffff-54c4-0000-000000000001"):
        response = api.get(f"/confirms/{ref}")
        assert (response.status_code, response.json()) == (
            404,
            {"errorCode": "error.not-found.dealReference"},
        ), ref
    assert api.get("/markets/NOPE").json() == {"errorCode": "error.not-found.epic"}


def test_garbage_on_the_socket_does_not_stop_the_server(api: ApiSession) -> None:
    host, port = api.server.host, api.server.port
    for payload in (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET / HTTP/9.9\r\n\r\n",
        b"BREW /coffee HTCPCP/1.0\r\n\r\n",
    ):
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(payload)
            sock.settimeout(2)
            try:
                sock.recv(1024)
            except (TimeoutError, ConnectionResetError):
                pass
    assert api.http.get("/time").status_code == 200


def test_admin_api_rejects_bad_input(api: ApiSession) -> None:
    assert (
        api.admin.get("/truth/transactions", params={"account": "nope", "from": "x"}).status_code
        == 404
    )
    account = api.accounts()[0]["accountId"]
    response = api.admin.get("/truth/transactions", params={"account": account, "from": "x"})
    assert (response.status_code, response.json()) == (400, {"errorCode": "error.invalid.from"})
    assert api.admin.post("/clock", json={"advance_seconds": "soon"}).status_code == 400
    assert api.admin.put("/faults", content=b"{oops").status_code == 400
