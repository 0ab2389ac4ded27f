"""GET /prices over HTTP as reference §7 describes it: max, inclusive ends, window rule, errors."""

from __future__ import annotations

import pytest

from tests.conftest import ApiSession


@pytest.fixture
def api(shared_api: ApiSession) -> ApiSession:
    if not shared_api.tokens:
        shared_api.login()
    return shared_api


def times(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [row["snapshotTimeUTC"] for row in response.json()["prices"]]


def test_both_ends_inclusive_and_oldest_first(api: ApiSession) -> None:
    window = {"from": "2026-01-15T10:00:00", "to": "2026-01-15T10:20:00"}
    got = times(api.get("/prices/BTCUSD", resolution="MINUTE_5", **window))
    assert got == [f"2026-01-15T10:{m:02d}:00" for m in range(0, 25, 5)]


def test_max_and_the_calendar_span_rule(api: ApiSession) -> None:
    assert len(times(api.get("/prices/BTCUSD"))) == 10  # default: the last ten minute bars
    assert len(times(api.get("/prices/BTCUSD", max="3"))) == 3
    window = {"from": "2026-01-14T00:00:00", "to": "2026-01-14T16:39:00"}  # 999 steps
    assert len(times(api.get("/prices/BTCUSD", max="1000", **window))) == 1000
    too_wide = api.get("/prices/BTCUSD", max="1000",
                       **{"from": "2026-01-14T00:00:00", "to": "2026-01-14T16:40:00"})  # fmt: skip
    assert too_wide.status_code == 400
    assert too_wide.json() == {"errorCode": "error.invalid.max.daterange"}
    assert api.get("/prices/BTCUSD", max="1001").json() == {"errorCode": "error.invalid.max"}


def test_future_to_and_closed_market(api: ApiSession) -> None:
    # The shared simulator's clock runs from 12:00: a `to` a day ahead stays in its future.
    future = api.get(
        "/prices/BTCUSD", resolution="HOUR", max="1000",
        **{"from": "2026-01-15T11:00:00", "to": "2026-01-16T11:00:00"},
    )  # fmt: skip
    assert future.status_code == 400 and future.json()["errorCode"] == "error.invalid.daterange"
    # Saturday: GOLD is shut all day
    shut = api.get("/prices/GOLD", **{"from": "2026-01-10T10:00:00", "to": "2026-01-10T10:05:00"})
    assert shut.status_code == 404 and shut.json()["errorCode"] == "error.prices.not-found"
    unknown = api.get("/prices/NOPE")
    assert unknown.status_code == 404 and unknown.json()["errorCode"] == "error.not-found.epic"
