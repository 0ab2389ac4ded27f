"""History endpoints of the simulator: request rules, shapes and links, over real HTTP."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from tests.conftest import ApiSession

DAY = {"from": "2025-06-10T00:00:00", "to": "2025-06-11T00:00:00"}


@pytest.fixture
def api_on_first(shared_api: ApiSession) -> ApiSession:
    first = shared_api.accounts()[0]["accountId"]
    if shared_api.get("/session").json()["accountId"] != first:
        assert shared_api.switch(first).status_code == 200
    return shared_api


@pytest.mark.parametrize("endpoint", ["/history/activity", "/history/transactions"])
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("from", "2025-06-10T00:00:00Z"),
        ("from", "2025-06-10T00:00:00+02:00"),
        ("from", "2025-06-10"),
        ("from", "2025-06-10T00:00:00.000"),
        ("from", "1749513600000"),
        ("from", "2025-13-10T00:00:00"),
        ("to", "2025-06-11T00:00:00Z"),
        ("to", "2025-06-11"),
    ],
)
def test_bad_dates_are_rejected(
    api_on_first: ApiSession, endpoint: str, name: str, value: str
) -> None:
    params = dict(DAY, **{name: value})
    response = api_on_first.get(endpoint, **params)
    assert response.status_code == 400
    assert response.json() == {"errorCode": f"error.invalid.{name}"}


def test_activity_window_over_one_day_is_rejected(api_on_first: ApiSession) -> None:
    response = api_on_first.get(
        "/history/activity", **{"from": "2025-06-10T00:00:00", "to": "2025-06-11T00:00:01"}
    )
    assert (response.status_code, response.json()) == (
        400,
        {"errorCode": "error.invalid.daterange"},
    )
    exactly_one_day = api_on_first.get("/history/activity", **DAY)
    assert exactly_one_day.status_code == 200
    backwards = api_on_first.get("/history/activity", **{"from": DAY["to"], "to": DAY["from"]})
    assert backwards.json() == {"errorCode": "error.invalid.daterange"}


def test_transactions_accept_long_ranges(api_on_first: ApiSession) -> None:
    response = api_on_first.get(
        "/history/transactions", **{"from": "2025-06-01T00:00:00", "to": "2025-07-01T00:00:00"}
    )
    assert response.status_code == 200
    assert len(response.json()["transactions"]) > 30


@pytest.mark.parametrize("endpoint", ["/history/activity", "/history/transactions"])
def test_last_period_rules(api_on_first: ApiSession, endpoint: str) -> None:
    for bad in ("86401", "172800", "0", "-5", "ten"):
        response = api_on_first.get(endpoint, lastPeriod=bad)
        assert (response.status_code, response.json()) == (
            400,
            {"errorCode": "error.invalid.lastPeriod"},
        ), bad
    assert api_on_first.get(endpoint, lastPeriod="86400").status_code == 200
    assert api_on_first.get(endpoint).status_code == 200  # default: the last 600 s


def _times(rows: list[dict], field: str) -> list[datetime]:
    return [datetime.fromisoformat(r[field]) for r in rows]


def test_rows_newest_first_and_field_casing(api_on_first: ApiSession) -> None:
    tx = api_on_first.get("/history/transactions", **DAY).json()["transactions"]
    act = api_on_first.get("/history/activity", **DAY).json()["activities"]
    assert tx and act
    assert all("dateUtc" in r and "dateUTC" not in r for r in tx)
    assert all("dateUTC" in r and "dateUtc" not in r for r in act)
    for times in (_times(tx, "dateUtc"), _times(act, "dateUTC")):
        assert times == sorted(times, reverse=True)


def test_transaction_fields(api_on_first: ApiSession) -> None:
    rows = api_on_first.get(
        "/history/transactions", **{"from": "2025-01-01T00:00:00", "to": "2025-03-01T00:00:00"}
    ).json()["transactions"]
    for row in rows:
        assert isinstance(row["size"], str)
        Decimal(row["size"])  # a signed decimal string
        assert row["currency"] == "USDd"  # demo-mode account
        assert row["status"] == "PROCESSED"
        assert len(row["reference"]) == 15 and row["reference"].isdigit()
        assert ("dealId" in row) == (row["transactionType"] == "TRADE")
    assert any(r["size"].startswith("-") for r in rows)
    assert len({r["reference"] for r in rows}) == len(rows)
    deposit = next(r for r in rows if r["transactionType"] == "DEPOSIT")
    assert "instrumentName" not in deposit


def test_trade_deal_ids_link_to_activity(api_on_first: ApiSession) -> None:
    trades = [
        r
        for r in api_on_first.get("/history/transactions", **DAY).json()["transactions"]
        if r["transactionType"] == "TRADE"
    ]
    assert trades
    for trade in trades[:5]:
        rows = api_on_first.get(
            "/history/activity", **DAY, dealId=trade["dealId"], detailed="true"
        ).json()["activities"]
        closing = [r for r in rows if r["dateUTC"] == trade["dateUtc"]]
        assert closing, f"no activity row for the trade {trade['reference']}"
        assert all(r["dealId"] == trade["dealId"] for r in rows)
        assert closing[0]["type"] == "POSITION"
        actions = {a["actionType"] for a in closing[0]["details"]["actions"]}
        assert actions & {"POSITION_CLOSED", "POSITION_PARTIALLY_CLOSED"}


def test_detailed_adds_details(api_on_first: ApiSession) -> None:
    plain = api_on_first.get("/history/activity", **DAY).json()["activities"]
    detailed = api_on_first.get("/history/activity", **DAY, detailed="true").json()["activities"]
    assert len(plain) == len(detailed)
    assert all("details" not in r for r in plain)
    for row in detailed:
        details = row["details"]
        assert {"dealReference", "marketName", "currency", "size", "direction", "level"} <= set(
            details
        )
        assert isinstance(details["size"], (int, float))


def test_fiql_filter(api_on_first: ApiSession) -> None:
    window = {"from": "2025-06-09T00:00:00", "to": "2025-06-10T00:00:00"}
    everything = api_on_first.get("/history/activity", **window).json()["activities"]
    assert len({r["type"] for r in everything}) >= 2

    def filtered(expression: str) -> list[dict]:
        response = api_on_first.get("/history/activity", **window, filter=expression)
        assert response.status_code == 200, response.text
        return response.json()["activities"]

    assert filtered("type==POSITION") == [r for r in everything if r["type"] == "POSITION"]
    assert filtered("type!=POSITION") == [r for r in everything if r["type"] != "POSITION"]
    assert filtered("type==POSITION,SWAP") == [
        r for r in everything if r["type"] in ("POSITION", "SWAP")
    ]
    assert filtered("type==POSITION;source==USER") == [
        r for r in everything if r["type"] == "POSITION" and r["source"] == "USER"
    ]
    epic = everything[0]["epic"]
    assert filtered(f"epic=={epic};status!=REJECTED") == [
        r for r in everything if r["epic"] == epic and r["status"] != "REJECTED"
    ]
    for bad in ("color==red", "type=POSITION", "type=="):
        response = api_on_first.get("/history/activity", **window, filter=bad)
        assert response.status_code == 400, bad


def test_transaction_type_filter(api_on_first: ApiSession) -> None:
    window = {"from": "2025-01-01T00:00:00", "to": "2025-03-01T00:00:00"}
    all_rows = api_on_first.get("/history/transactions", **window).json()["transactions"]
    deposits = api_on_first.get("/history/transactions", **window, type="DEPOSIT").json()[
        "transactions"
    ]
    assert deposits == [r for r in all_rows if r["transactionType"] == "DEPOSIT"]
    assert deposits


def test_one_sided_activity_range_implies_one_day(api_on_first: ApiSession) -> None:
    only_from = api_on_first.get("/history/activity", **{"from": DAY["from"]}).json()
    both = api_on_first.get("/history/activity", **DAY).json()
    assert only_from == both


def test_boundary_rows_exist_and_windows_are_closed(api_on_first: ApiSession) -> None:
    """A rebate is booked at exactly 00:00:00.000 on the 1st; both adjacent windows return it."""
    before = api_on_first.get(
        "/history/transactions", **{"from": "2025-05-31T00:00:00", "to": "2025-06-01T00:00:00"}
    ).json()["transactions"]
    after = api_on_first.get(
        "/history/transactions", **{"from": "2025-06-01T00:00:00", "to": "2025-06-02T00:00:00"}
    ).json()["transactions"]
    at_midnight = [r for r in after if r["dateUtc"] == "2025-06-01T00:00:00"]
    assert any(r["transactionType"] == "REBATE" for r in at_midnight)
    assert all(r in before for r in at_midnight)


def test_accounts_have_different_currencies_and_history(api_on_first: ApiSession) -> None:
    accounts = api_on_first.accounts()
    assert len(accounts) >= 2
    assert len({a["currency"] for a in accounts}) == len(accounts)
    second = accounts[1]["accountId"]
    assert api_on_first.switch(second).status_code == 200
    rows = api_on_first.get("/history/transactions", **DAY).json()["transactions"]
    assert rows and all(r["currency"] == accounts[1]["wireCurrency"] for r in rows)


def test_future_rows_are_not_visible(api_on_first: ApiSession) -> None:
    now = api_on_first.server.simulator.clock.now()
    today = now.strftime("%Y-%m-%dT00:00:00")
    rows = api_on_first.get("/history/activity", **{"from": today}).json()["activities"]
    assert all(datetime.fromisoformat(r["dateUTC"]) <= now.replace(tzinfo=None) for r in rows)
