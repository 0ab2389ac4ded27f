"""Watchlist edits and moving sentiment over HTTP: the rules of reference §7 and §8."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from tests.conftest import ApiSession, make_server


@pytest.fixture
def api() -> Iterator[ApiSession]:
    """A fresh simulator without the rate limit: these tests send bursts of edits."""
    server = make_server(rate_limit_per_second=0, start=date(2026, 1, 1))  # a quick first login
    session = ApiSession(server)
    yield session
    session.close()
    server.stop()


def _members(api: ApiSession, watchlist_id: str) -> list[str]:
    response = api.get(f"/watchlists/{watchlist_id}")
    assert response.status_code == 200, response.text
    return [m["epic"] for m in response.json()["markets"]]


def test_create_add_remove_delete(api: ApiSession) -> None:
    api.login()
    headers = api.tokens
    created = api.http.post(
        "/watchlists", json={"name": "Metals", "epics": ["GOLD", "NOPE"]}, headers=headers
    )
    assert created.status_code == 200
    assert created.json()["status"] == "SUCCESS_NOT_ALL_INSTRUMENTS_ADDED"
    new_id = created.json()["watchlistId"]
    assert new_id == "123458"
    assert _members(api, new_id) == ["GOLD"]
    put = api.http.put(f"/watchlists/{new_id}", json={"epic": "SILVER"}, headers=headers)
    assert put.json() == {"status": "SUCCESS"}
    again = api.http.put(f"/watchlists/{new_id}", json={"epic": "SILVER"}, headers=headers)
    assert again.status_code == 200
    assert _members(api, new_id) == ["GOLD", "SILVER"]
    unknown = api.http.put(f"/watchlists/{new_id}", json={"epic": "NOPE"}, headers=headers)
    assert (unknown.status_code, unknown.json()) == (404, {"errorCode": "error.not-found.epic"})
    gone = api.http.delete(f"/watchlists/{new_id}/GOLD", headers=headers)
    assert gone.json() == {"status": "SUCCESS"}
    absent = api.http.delete(f"/watchlists/{new_id}/GOLD", headers=headers)
    assert (absent.status_code, absent.json()) == (404, {"errorCode": "error.not-found.epic"})
    assert _members(api, new_id) == ["SILVER"]
    names = [w["name"] for w in api.get("/watchlists").json()["watchlists"]]
    assert names == ["Hello world", "watchlist1", "Metals"]
    assert api.http.delete(f"/watchlists/{new_id}", headers=headers).status_code == 200
    missing = api.http.delete(f"/watchlists/{new_id}", headers=headers)
    assert (missing.status_code, missing.json()) == (
        404,
        {"errorCode": "error.not-found.watchlist"},
    )
    read = api.get(f"/watchlists/{new_id}")
    assert (read.status_code, read.json()) == (404, {"errorCode": "error.invalid.watchlist"})


def test_names_outside_one_to_twenty_characters_are_refused(api: ApiSession) -> None:
    api.login()
    for name in ("", "x" * 21, None, 7):
        answer = api.http.post("/watchlists", json={"name": name}, headers=api.tokens)
        assert (answer.status_code, answer.json()) == (
            400,
            {"errorCode": "error.size.createwatchlistrequest.name"},
        )
    ok = api.http.post("/watchlists", json={"name": "x" * 20}, headers=api.tokens)
    assert ok.json()["status"] == "SUCCESS"
    assert _members(api, ok.json()["watchlistId"]) == []


def test_edits_need_a_session(api: ApiSession) -> None:
    answer = api.http.post("/watchlists", json={"name": "x"})
    assert answer.status_code in (400, 401)


def test_sentiment_moves_with_the_simulated_clock(api: ApiSession) -> None:
    api.login()
    api.admin.post("/clock", json={"freeze": True})
    first = api.get("/clientsentiment", marketIds="GOLD,EURUSD").json()
    assert api.get("/clientsentiment", marketIds="GOLD,EURUSD").json() == first
    assert api.get("/clientsentiment/GOLD").json() == first["clientSentiments"][0]
    api.admin.post("/clock", json={"advance_seconds": 6 * 3600})
    api.login()
    later = api.get("/clientsentiment", marketIds="GOLD,EURUSD").json()
    assert later != first
    for item in later["clientSentiments"]:
        total = item["longPositionPercentage"] + item["shortPositionPercentage"]
        assert abs(total - 100) < 1e-9
    missing = api.get("/clientsentiment", marketIds="GOLD,NOPE")
    assert (missing.status_code, missing.json()) == (404, {"errorCode": "error.not-found.epic"})
