"""Every dealing rule and error code of the reference (§5, §6, §9), one case each, over HTTP.

The bounds in the expected error codes are computed here from GET /markets/{epic} (quote and
dealingRules), not copied from the simulator, so the case fails if the two disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from ledger_etl.simulator import SimulatorServer
from tests.conftest import TEST_NOW
from tests.simulator.dealing_helpers import Dealer, band, dealing_server, text

# TEST_NOW is a Thursday, 12:00 UTC: metals, FX and crypto trade; US shares open at 13:30.
Case = Callable[[Dealer], tuple[str, str, Any, int, str]]


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    srv = dealing_server()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def logged_in(server: SimulatorServer) -> Iterator[Dealer]:
    d = Dealer(server)
    d.login()
    yield d
    d.close()


@pytest.fixture
def dealer(server: SimulatorServer, logged_in: Dealer) -> Dealer:
    """The module's session at 12:00 UTC on TEST_NOW, in netting mode."""
    server.simulator.clock.set(TEST_NOW)
    server.simulator.preferences = None
    return logged_in


def _gold(**extra: Any) -> dict[str, Any]:
    return {"epic": "GOLD", "direction": "BUY", "size": 1, **extra}


def _stop_band(d: Dealer, side: str = "BUY", guaranteed: bool = False) -> tuple[Decimal, Decimal]:
    bid, ask = d.quote("GOLD")
    ref = ask if side == "BUY" else bid
    return band(d.market("GOLD"), ref, -1 if side == "BUY" else 1, guaranteed=guaranteed)


def _profit_band(d: Dealer) -> tuple[Decimal, Decimal]:
    return band(d.market("GOLD"), d.quote("GOLD")[1], 1)


P, W = "/positions", "/workingorders"
CASES: dict[str, Case] = {
    "missing epic": lambda d: (
        "POST", P, {"direction": "BUY", "size": 1}, 400, "error.invalid.epic"),
    "unknown epic": lambda d: ("POST", P, _gold(epic="NOPE"), 400, "error.invalid.epic"),
    "bad direction": lambda d: ("POST", P, _gold(direction="UP"), 400, "error.invalid.direction"),
    "missing size": lambda d: (
        "POST", P, {"epic": "GOLD", "direction": "BUY"}, 400, "error.invalid.size"),
    "negative size": lambda d: ("POST", P, _gold(size=-1), 400, "error.invalid.size"),
    "size as a string": lambda d: ("POST", P, _gold(size="1"), 400, "error.invalid.size"),
    "size off the increment": lambda d: ("POST", P, _gold(size=1.15), 400, "error.invalid.size"),
    "size above the maximum": lambda d: (
        "POST", P, _gold(size=6000), 400, "error.invalid.size.maxvalue: 5000"),
    "two stop fields": lambda d: (
        "POST", P, _gold(stopLevel=1, stopDistance=2), 400, "error.validation.stop.price"),
    "negative stop distance": lambda d: (
        "POST", P, _gold(stopDistance=-5), 400, "error.validation.stop.price"),
    "two profit fields": lambda d: (
        "POST", P, _gold(profitLevel=1, profitAmount=2), 400, "error.validation.limit.price"),
    "stop too far": lambda d: (
        "POST", P, _gold(stopLevel=1), 400,
        f"error.invalid.stoploss.minvalue: {text(_stop_band(d)[0])}"),
    "stop too near": lambda d: (
        "POST", P, _gold(stopLevel=float(d.quote("GOLD")[1])), 400,
        f"error.invalid.stoploss.maxvalue: {text(_stop_band(d)[1])}"),
    "sell stop too near": lambda d: (
        "POST", P, _gold(direction="SELL", stopLevel=float(d.quote("GOLD")[0])), 400,
        f"error.invalid.stoploss.minvalue: {text(_stop_band(d, 'SELL')[0])}"),
    "profit too near": lambda d: (
        "POST", P, _gold(profitLevel=float(d.quote("GOLD")[1])), 400,
        f"error.invalid.takeprofit.minvalue: {text(_profit_band(d)[0])}"),
    "profit too far": lambda d: (
        "POST", P, _gold(profitDistance=100000), 400,
        f"error.invalid.takeprofit.maxvalue: {text(_profit_band(d)[1])}"),
    "guaranteed stop too near": lambda d: (
        "POST", P, _gold(guaranteedStop=True, stopDistance=1), 400,
        f"error.invalid.stoploss.maxvalue: {text(_stop_band(d, guaranteed=True)[1])}"),
    "guaranteed stop without a stop": lambda d: (
        "POST", P, _gold(guaranteedStop=True), 400,
        "error.vallidation.guaranteed-stop-loss.required"),
    "guaranteed stop on crypto": lambda d: (
        "POST", P, {"epic": "BTCUSD", "direction": "BUY", "size": 0.01, "guaranteedStop": True,
                    "stopDistance": 6000}, 400, "error.invalid.guaranteedStop"),
    "guaranteed and trailing stop": lambda d: (
        "POST", P, _gold(guaranteedStop=True, trailingStop=True, stopDistance=100), 400,
        "error.invalid.guaranteedStop"),
    "guaranteed stop not a boolean": lambda d: (
        "POST", P, _gold(guaranteedStop="yes"), 400, "error.invalid.guaranteedStop"),
    "trailing stop without a distance": lambda d: (
        "POST", P, _gold(trailingStop=True, stopLevel=2000), 400, "error.invalid.trailingStop"),
    "trailing stop where the market has none": lambda d: (
        "POST", P, {"epic": "SILVER", "direction": "BUY", "size": 1, "trailingStop": True,
                    "stopDistance": 1}, 400, "error.invalid.trailingStop"),
    "margin above the funds": lambda d: (
        "POST", P, _gold(size=5000), 400, "error.validation.margin"),
    "body not JSON": lambda d: ("POST", P, b"{nope", 400, "error.malformed.body"),
    "order without type": lambda d: (
        "POST", W, _gold(level=2000), 400, "error.invalid.type"),
    "order without level": lambda d: ("POST", W, _gold(type="LIMIT"), 400, "error.invalid.level"),
    "buy limit above the offer": lambda d: (
        "POST", W, _gold(type="LIMIT", level=float(d.quote("GOLD")[1] + 10)), 400,
        "error.invalid.level"),
    "sell stop above the bid": lambda d: (
        "POST", W, _gold(direction="SELL", type="STOP", level=float(d.quote("GOLD")[0] + 10)),
        400, "error.invalid.level"),
    "good-till with a Z": lambda d: (
        "POST", W, _gold(type="LIMIT", level=1000, goodTillDate="2026-02-01T00:00:00Z"), 400,
        "error.invalid.goodTillDate"),
    "good-till in the past": lambda d: (
        "POST", W, _gold(type="LIMIT", level=1000, goodTillDate="2026-01-01T00:00:00"), 400,
        "error.not-in-future.goodTillDate"),
    "order stop measured from the order level": lambda d: (
        "POST", W, _gold(type="LIMIT", level=2000, stopLevel=1), 400,
        f"error.invalid.stoploss.minvalue: {text(band(d.market('GOLD'), Decimal(2000), -1)[0])}"),
    "amend unknown position": lambda d: (
        "PUT", f"{P}/00000000-0000-54c5-0000-000000000000", {"stopDistance": 50}, 404,
        "error.not-found.dealId"),
    "close unknown position": lambda d: (
        "DELETE", f"{P}/nope", None, 404, "error.not-found.dealId"),
    "amend unknown order": lambda d: (
        "PUT", f"{W}/nope", {"level": 1000}, 404, "error.not-found.dealId"),
    "cancel unknown order": lambda d: ("DELETE", f"{W}/nope", None, 404, "error.not-found.dealId"),
    "unknown confirm": lambda d: (
        "GET", "/confirms/o_nope", None, 404, "error.not-found.dealReference"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_rule(dealer: Dealer, name: str) -> None:
    method, path, body, status, code = CASES[name](dealer)
    before = (dealer.positions(), dealer.orders())
    response = dealer.send(method, path, body)
    assert (response.status_code, response.json()) == (status, {"errorCode": code})
    assert (dealer.positions(), dealer.orders()) == before  # a refused request changes nothing


def test_size_is_not_amendable(dealer: Dealer) -> None:
    position = next(iter(dealer.positions()))
    answer = dealer.send("PUT", f"/positions/{position}", {"size": 2, "stopDistance": 50})
    assert (answer.status_code, answer.json()) == (400, {"errorCode": "error.invalid.size"})
    order = dealer.scripted_order()["dealId"]
    answer = dealer.send("PUT", f"/workingorders/{order}", {"size": 2})
    assert (answer.status_code, answer.json()) == (400, {"errorCode": "error.invalid.size"})


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("/positions", _gold(size=0.05), "MINIMUM_ORDER_SIZE_ERROR"),
        ("/positions", {"epic": "AAPL", "direction": "BUY", "size": 1}, "MARKET_CLOSED"),
        (
            "/workingorders",
            {"epic": "AAPL", "direction": "BUY", "size": 1, "level": 1, "type": "LIMIT"},
            "MARKET_CLOSED",
        ),
    ],
)
def test_rejected_deal_has_a_reference_a_reason_and_an_activity_row(
    dealer: Dealer, path: str, body: dict[str, Any], reason: str
) -> None:
    before = (dealer.positions(), dealer.orders())
    response = dealer.send("POST", path, body)
    assert response.json()["dealReference"].startswith("o_")
    confirm = dealer.confirm(response)
    assert confirm["dealStatus"] == "REJECTED" and confirm["reason"] == reason
    assert confirm["affectedDeals"] == [] and confirm["status"] is None
    assert (dealer.positions(), dealer.orders()) == before
    dealer.server.simulator.clock.advance(1)
    rows = dealer.get("/history/activity", lastPeriod=60, detailed="true").json()["activities"]
    mine = [
        (r["type"], r["status"], r["details"]["dealReference"])
        for r in rows
        if r["dealId"] == confirm["dealId"]
    ]
    kind = "POSITION" if path == "/positions" else "WORKING_ORDER"
    assert mine == [(kind, "REJECTED", response.json()["dealReference"])]


def test_market_closed_close_is_rejected(dealer: Dealer) -> None:
    dealer.server.simulator.clock.set(TEST_NOW + timedelta(hours=2))  # 14:00: AAPL trades
    opened = dealer.confirm(
        dealer.send("POST", "/positions", {"epic": "AAPL", "direction": "BUY", "size": 1})
    )
    deal = opened["affectedDeals"][0]["dealId"]
    dealer.server.simulator.clock.set(TEST_NOW + timedelta(hours=9))  # 21:00: closed
    closing = dealer.send("DELETE", f"/positions/{deal}")
    assert closing.json() == {"dealReference": f"p_{deal}"}
    confirm = dealer.confirm(closing)
    assert (confirm["dealStatus"], confirm["reason"]) == ("REJECTED", "MARKET_CLOSED")
    assert deal in dealer.positions()


def test_order_spacing_and_hourly_cap() -> None:
    server = dealing_server(orders_per_hour=3)
    dealer = Dealer(server)
    try:
        dealer.login()
        body = _gold(type="LIMIT", level=1000)
        assert dealer.send("POST", "/workingorders", body).status_code == 200
        too_soon = dealer.send("POST", "/positions", _gold(), step=0.05)
        assert (too_soon.status_code, too_soon.json()) == (
            429,
            {"errorCode": "error.too-many.requests"},
        )
        assert dealer.send("POST", "/workingorders", body, step=0.06).status_code == 200  # 0.11 s
        assert dealer.send("POST", "/workingorders", body).status_code == 200
        capped = dealer.send("POST", "/workingorders", body, step=60)
        assert (capped.status_code, capped.json()) == (
            429,
            {"errorCode": "error.too-many.requests"},
        )
        assert len(dealer.orders()) - 3 == len(
            [o for o in dealer.orders().values() if o["orderLevel"] != 1000]
        )
        assert dealer.send("POST", "/workingorders", body, step=3600).status_code == 200
    finally:
        dealer.close()
        server.stop()


def test_guaranteed_stop_is_refused_in_hedging_mode(dealer: Dealer) -> None:
    dealer.server.simulator.preferences = dealer.server.simulator.market.account_preferences(
        hedging_mode=True
    )
    answer = dealer.send("POST", "/positions", _gold(guaranteedStop=True, stopDistance=100))
    assert answer.json() == {"errorCode": "error.invalid.guaranteedStop.hedging"}
