"""Fault injection over real HTTP: each kind, scripted and random, at start and at run time."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import httpx
import pytest

from ledger_etl.simulator.faults import FaultConfigError, FaultPlan, _wire_value, encode_body
from tests.conftest import ApiSession, make_server

DAY = {"from": "2025-06-10T00:00:00", "to": "2025-06-11T00:00:00"}


def _set_faults(api: ApiSession, profile: dict) -> None:
    response = api.admin.put("/faults", json=profile)
    assert response.status_code == 200, response.text


def test_scripted_status_on_the_nth_request(api: ApiSession) -> None:
    api.login()
    _set_faults(
        api,
        {
            "rules": [
                {"kind": "status", "status": 502, "path": "^/history/transactions$", "nth": [3]}
            ]
        },
    )
    statuses = [api.get("/history/transactions", **DAY).status_code for _ in range(4)]
    assert statuses == [200, 200, 502, 200]
    assert api.get("/ping").status_code == 200  # other paths are untouched


@pytest.mark.parametrize("status", [500, 502, 503])
def test_every_kth_request_fails(api: ApiSession, status: int) -> None:
    api.login()
    _set_faults(
        api, {"rules": [{"kind": "status", "status": status, "every": 3, "path": "/history/"}]}
    )
    responses = [api.get("/history/activity", **DAY) for _ in range(6)]
    assert [r.status_code for r in responses] == [200, 200, status, 200, 200, status]
    assert responses[2].json() == {"errorCode": "error.service.unavailable"}


def test_throttle_burst(api: ApiSession) -> None:
    api.login()
    _set_faults(api, {"rules": [{"kind": "throttle", "nth": [1, 2, 3]}]})
    responses = [api.get("/ping") for _ in range(4)]
    assert [r.status_code for r in responses] == [429, 429, 429, 200]
    assert responses[0].json() == {"errorCode": "error.too-many.requests"}


def test_dropped_connection(api: ApiSession) -> None:
    api.login()
    _set_faults(api, {"rules": [{"kind": "drop", "nth": [1], "path": "/history/"}]})
    with pytest.raises(httpx.RemoteProtocolError):
        api.get("/history/transactions", **DAY)
    assert api.get("/history/transactions", **DAY).status_code == 200  # still serving


def test_latency_beyond_a_read_timeout(api: ApiSession) -> None:
    api.login()
    _set_faults(api, {"rules": [{"kind": "latency", "seconds": 1.5, "nth": [1]}]})
    with pytest.raises(httpx.ReadTimeout):
        api.http.get("/ping", headers=api.tokens, timeout=httpx.Timeout(5, read=0.3))
    started = time.perf_counter()
    assert api.get("/ping").status_code == 200
    assert time.perf_counter() - started < 1.0


def test_html_and_truncated_json_bodies_with_status_200(api: ApiSession) -> None:
    api.login()
    _set_faults(
        api,
        {
            "rules": [
                {"kind": "html", "nth": [1], "path": "/history/"},
                {"kind": "truncated_json", "nth": [2], "path": "/history/"},
            ]
        },
    )
    html = api.get("/history/transactions", **DAY)
    assert html.status_code == 200 and html.text.startswith("<!DOCTYPE html>")
    truncated = api.get("/history/transactions", **DAY)
    assert truncated.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated.text)
    assert api.get("/history/transactions", **DAY).json()["transactions"]


def test_early_session_expiry(api: ApiSession) -> None:
    api.login()
    _set_faults(api, {"rules": [{"kind": "expire_session", "every": 3}]})
    statuses = [api.get("/ping").status_code for _ in range(3)]
    assert statuses == [200, 200, 401]
    assert api.get("/ping").json() == {"errorCode": "error.invalid.session.token"}


def test_silent_truncation_above_n_rows(api: ApiSession) -> None:
    api.login()
    full = api.get(
        "/history/transactions", **{"from": "2025-06-01T00:00:00", "to": "2025-07-01T00:00:00"}
    ).json()
    assert len(full["transactions"]) > 20
    _set_faults(api, {"truncate_above": 20})
    cut = api.get(
        "/history/transactions", **{"from": "2025-06-01T00:00:00", "to": "2025-07-01T00:00:00"}
    ).json()
    assert set(cut) == {"transactions"}  # no marker, no paging metadata
    assert cut["transactions"] == full["transactions"][:20]  # the newest 20


def test_late_arrival(api: ApiSession) -> None:
    api.login()
    clock = api.server.simulator.clock
    clock.freeze()
    now = clock.now()
    window = {
        "from": (now.replace(minute=0, second=0, microsecond=0).strftime("%Y-%m-%dT00:00:00")),
        "to": now.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    before = api.get("/history/activity", **window).json()["activities"]
    assert before
    _set_faults(api, {"late_arrival": [{"endpoint": "activity", "seconds": 3 * 3600}]})
    late = api.get("/history/activity", **window).json()["activities"]
    assert len(late) < len(before)
    cutoff = (now - timedelta(hours=3)).replace(tzinfo=None)
    assert late == [r for r in before if datetime.fromisoformat(r["dateUTC"]) <= cutoff]
    clock.advance(3 * 3600)
    api.login()  # the session idled out meanwhile
    assert api.get("/history/activity", **window).json()["activities"] == before


def test_echo_answers_with_the_request_in_the_error_code(api: ApiSession) -> None:
    _set_faults(
        api,
        {"rules": [
            {"kind": "echo", "status": 401, "method": "POST", "path": "^/session$", "nth": [1]},
            {"kind": "echo", "path": "^/history/", "error_code": "error.echo", "nth": [1]},
        ]},
    )  # fmt: skip
    refused = api.http.post(
        "/session",
        json={"identifier": "me@example.com", "password": 'p"w d/'},
        headers={"X-CAP-API-KEY": "key-1"},
    )
    assert refused.status_code == 401
    echoed = refused.json()["errorCode"]
    assert echoed.startswith("error.fault.injected: POST /api/v1/session\n")
    assert '"password":"p\\"w d/"' in echoed  # the body as sent: JSON-escaped
    assert "password=p%22w+d%2F" in echoed and "identifier=me%40example.com" in echoed
    assert "x-cap-api-key: key-1" in echoed and '"x-cap-api-key": "key-1"' in echoed

    api.login()  # the rule fired once; the next login goes through
    history = api.get("/history/activity", **DAY)
    assert history.status_code == 500  # an echo's default status
    echoed = history.json()["errorCode"]
    assert echoed.startswith("error.echo: GET /api/v1/history/activity?from=2025-06-10T00")
    assert f"cst: {api.tokens['CST']}" in echoed
    assert f"x-security-token={api.tokens['X-SECURITY-TOKEN']}" in echoed
    assert api.get("/history/activity", **DAY).status_code == 200


def test_random_faults_are_reproducible_with_a_seed() -> None:
    def run() -> list[int]:
        server = make_server(
            faults={"seed": 7, "rules": [{"kind": "status", "status": 503, "probability": 0.3}]},
            rate_limit_per_second=0,
        )
        api = ApiSession(server)
        try:
            api.login()
            return [api.get("/ping").status_code for _ in range(30)]
        finally:
            api.close()
            server.stop()

    first, second = run(), run()
    assert first == second
    assert 0 < first.count(503) < 30


def test_fault_profile_at_start_and_admin_api(api: ApiSession) -> None:
    server = make_server(faults={"rules": [{"kind": "throttle", "nth": [2]}]})
    other = ApiSession(server)
    try:
        other.login()  # request 1
        assert other.get("/ping").status_code == 429  # request 2
        described = other.admin.get("/faults").json()
        assert described["rules"][0]["fired"] == 1
        assert other.admin.delete("/faults").json()["rules"] == []
        other.admin.post("/faults/rules", json={"kind": "status", "status": 500, "nth": [1]})
        assert other.get("/ping").status_code == 500
        stats = other.admin.get("/stats").json()
        assert stats["faults_fired"] == 2 and stats["logins"] == 1
    finally:
        other.close()
        server.stop()


@pytest.mark.parametrize(
    "profile",
    [
        {"rules": [{"kind": "explode"}]},
        {"rules": [{"kind": "status", "status": 200}]},
        {"rules": [{"kind": "echo", "status": 302}]},
        {"rules": [{"kind": "status", "path": "("}]},
        {"rules": [{"kind": "latency", "seconds": -1}]},
        {"rules": "all"},
        {"truncate_above": 0},
        {"late_arrival": [{"endpoint": "positions", "seconds": 5}]},
        {"surprise": True},
        {
            "corrupt_rows": [
                {
                    "endpoint": "transactions",
                    "kind": "override",
                    "fields": {"note": {"$bytes": "zz"}},
                }
            ]
        },
        {"corrupt_rows": [{"endpoint": "accounts", "kind": "long_note"}]},
    ],
)
def test_bad_fault_profiles_are_rejected_clearly(api: ApiSession, profile: dict) -> None:
    with pytest.raises(FaultConfigError):
        FaultPlan(profile)
    response = api.admin.put("/faults", json=profile)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "error.invalid.faults"
    assert response.json()["message"]
    assert api.admin.get("/faults").json()["rules"] == []  # the old profile stays


def test_raw_bytes_and_numbers_are_spliced_into_the_body_as_sent() -> None:
    """`{"$bytes": hex}` is a string of exactly those bytes (not UTF-8, raw controls) and
    `{"$number": text}` that literal, beside a lone surrogate sent as its escape."""
    row = _wire_value({"note": {"$bytes": "6f6bff"}, "epic": {"$bytes": "610762"},
                       "size": {"$number": "NaN"}, "status": "x\ud800"})  # fmt: skip
    assert encode_body({"transactions": [row]}) == (
        b'{"transactions":[{"note":"ok\xff","epic":"a\x07b","size":NaN,"status":"x\\ud800"}]}'
    )
