"""Deals made through the API live in the world: netting and hedging, amendments, closes, orders
that fill, are cancelled or expire; each shows in positions or working orders, in the activity,
in TRADE transactions on close and in the balance, and the four views still agree."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger_etl.simulator.prices import epoch_second
from tests.conftest import TEST_NOW
from tests.simulator.dealing_helpers import Dealer, dealing_server
from tests.simulator.views import HORIZON, activity, assert_views_agree, parse, transactions

CENT = Decimal("0.01")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Balance checkpoints shared by the module's simulators: the first sweeps, the rest read."""
    return tmp_path_factory.mktemp("sim-cache")


@pytest.fixture
def dealer(checkpoints: Path) -> Iterator[Dealer]:
    server = dealing_server(cache_dir=checkpoints)
    d = Dealer(server)
    d.login()
    yield d
    d.close()
    server.stop()


def _d(value: Any) -> Decimal:
    return Decimal(str(value))


def _views_agree(d: Dealer) -> None:
    now = d.server.simulator.clock.now() + timedelta(seconds=1)
    d.server.simulator.clock.set(now)
    start = TEST_NOW - HORIZON
    assert_views_agree(d, now, activity(d, start, now), transactions(d, start, now))


def _truth_balance(d: Dealer) -> Decimal:
    account = d.get("/session").json()["accountId"]
    rows = d.admin.get(
        "/truth/transactions",
        params={"account": account, "from": "2000-01-01T00:00:00Z",
                "to": d.server.simulator.clock.now().isoformat()},
    ).json()["transactions"]  # fmt: skip
    return sum((_d(r["size"]) for r in rows), Decimal(0))


def _free_epic(d: Dealer) -> tuple[str, Decimal]:
    """A market that is open now and where the account holds nothing: (epic, minDealSize)."""
    held = {p["epic"] for p in d.get("/positions").json()["positions"] for p in [p["market"]]}
    for epic in ("GOLD", "SILVER", "EURUSD", "GBPUSD", "US500", "BTCUSD"):
        details = d.market(epic)
        if epic not in held and details["snapshot"]["marketStatus"] == "TRADEABLE":
            return epic, _d(details["dealingRules"]["minDealSize"]["value"])
    raise AssertionError("no free market")


def _trades(d: Dealer, deal: str) -> list[Decimal]:
    d.server.simulator.clock.advance(1)  # a window's end is exclusive: step past the deal
    rows = d.get("/history/transactions", lastPeriod=3600).json()["transactions"]
    return [
        _d(r["size"]) for r in rows if r.get("dealId") == deal and r["transactionType"] == "TRADE"
    ]


def test_netting_reduces_the_oldest_position_first(dealer: Dealer) -> None:
    epic, unit = _free_epic(dealer)
    first = dealer.confirm(
        dealer.send(
            "POST", "/positions", {"epic": epic, "direction": "BUY", "size": float(unit * 10)}
        )
    )
    second = dealer.confirm(
        dealer.send(
            "POST", "/positions", {"epic": epic, "direction": "BUY", "size": float(unit * 5)}
        )
    )
    a, b = first["affectedDeals"][0]["dealId"], second["affectedDeals"][0]["dealId"]
    assert (
        first["status"] == "OPEN" and first["dealId"] != a
    )  # the order's id is not the position's
    balance = dealer.balance()
    sell = dealer.confirm(
        dealer.send(
            "POST", "/positions", {"epic": epic, "direction": "SELL", "size": float(unit * 12)}
        )
    )
    assert sell["status"] == "PARTIALLY_CLOSED"
    assert sell["affectedDeals"] == [
        {"dealId": a, "status": "FULLY_CLOSED"}, {"dealId": b, "status": "PARTIALLY_CLOSED"},
    ]  # fmt: skip
    price = _d(sell["level"])
    expected_a = ((price - _d(first["level"])) * unit * 10).quantize(CENT)
    expected_b = ((price - _d(second["level"])) * unit * 2).quantize(CENT)
    assert _trades(dealer, a) == [expected_a] and _trades(dealer, b) == [expected_b]
    assert _d(sell["profit"]) == expected_a + expected_b
    assert dealer.balance() == balance + expected_a + expected_b
    positions = dealer.positions()
    assert a not in positions and _d(positions[b]["size"]) == unit * 3
    # A position's own reference confirms its latest operation.
    assert dealer.get(f"/confirms/p_{a}").json()["status"] == "CLOSED"
    latest = dealer.get(f"/confirms/{positions[b]['dealReference']}").json()
    assert (latest["status"], _d(latest["size"])) == ("PARTIALLY_CLOSED", unit * 2)
    flip = dealer.confirm(
        dealer.send(
            "POST", "/positions", {"epic": epic, "direction": "SELL", "size": float(unit * 5)}
        )
    )
    assert [x["status"] for x in flip["affectedDeals"]] == ["FULLY_CLOSED", "OPENED"]
    c = flip["affectedDeals"][1]["dealId"]
    assert (
        dealer.positions()[c]["direction"] == "SELL"
        and _d(dealer.positions()[c]["size"]) == unit * 2
    )
    assert dealer.balance() == _truth_balance(dealer)
    _views_agree(dealer)


def test_hedging_keeps_opposite_positions(dealer: Dealer) -> None:
    answer = dealer.http.put(
        "/accounts/preferences", json={"hedgingMode": True}, headers=dealer.tokens
    )
    assert answer.status_code == 200
    epic, unit = _free_epic(dealer)
    buy = dealer.confirm(
        dealer.send("POST", "/positions", {"epic": epic, "direction": "BUY", "size": float(unit)})
    )
    sell = dealer.confirm(
        dealer.send("POST", "/positions", {"epic": epic, "direction": "SELL", "size": float(unit)})
    )
    assert buy["affectedDeals"][0]["status"] == sell["affectedDeals"][0]["status"] == "OPENED"
    positions = dealer.positions()
    assert {positions[x["affectedDeals"][0]["dealId"]]["direction"] for x in (buy, sell)} == {
        "BUY",
        "SELL",
    }
    _views_agree(dealer)


def _reducible(dealer: Dealer) -> tuple[dict[str, Any], dict[str, Any], Decimal]:
    """A scripted open position of at least two size steps in an open market, hour by hour."""
    for _ in range(72):
        for p in dealer.positions().values():
            if "-54c4-" not in p["dealId"]:
                continue
            rules = dealer.market(dealer.get(f"/positions/{p['dealId']}").json()["market"]["epic"])
            step = _d(rules["dealingRules"]["minSizeIncrement"]["value"])
            if _d(p["size"]) >= 2 * step and rules["snapshot"]["marketStatus"] == "TRADEABLE":
                return p, rules, step
        dealer.server.simulator.clock.advance(3600)
    raise AssertionError("no scripted position to reduce in three days")


def test_a_scripted_position_reduced_by_netting_lives_on_in_the_book(dealer: Dealer) -> None:
    p, rules, step = _reducible(dealer)
    epic = rules["instrument"]["epic"]
    other = "SELL" if p["direction"] == "BUY" else "BUY"
    done = dealer.confirm(
        dealer.send("POST", "/positions", {"epic": epic, "direction": other, "size": float(step)})
    )
    assert done["affectedDeals"][0] == {"dealId": p["dealId"], "status": "PARTIALLY_CLOSED"}
    assert _d(dealer.positions()[p["dealId"]]["size"]) == _d(p["size"]) - step
    _views_agree(dealer)
    # Past the horizon its scripted close never comes: the deal is the book's now.
    dealer.server.simulator.clock.advance(8 * 86400)
    assert _d(dealer.positions()[p["dealId"]]["size"]) == _d(p["size"]) - step
    assert dealer.balance() == _truth_balance(dealer)


def test_amend_then_close(dealer: Dealer) -> None:
    epic, unit = _free_epic(dealer)
    bid, ask = dealer.quote(epic)
    opened = dealer.confirm(
        dealer.send(
            "POST",
            "/positions",
            {
                "epic": epic,
                "direction": "BUY",
                "size": float(unit),
                "stopDistance": float(ask / 20),
            },
        )
    )
    deal = opened["affectedDeals"][0]["dealId"]
    assert _d(dealer.positions()[deal]["stopLevel"]) == _d(opened["stopLevel"])
    new_stop = (bid * Decimal("0.9")).quantize(
        _d(dealer.market(epic)["dealingRules"]["minStepDistance"]["value"])
    )
    amended = dealer.send(
        "PUT",
        f"/positions/{deal}",
        {"stopLevel": float(new_stop), "profitDistance": float(ask / 10)},
    )
    assert amended.json() == {"dealReference": f"p_{deal}"}
    confirm = dealer.confirm(amended)
    assert (confirm["status"], confirm["affectedDeals"]) == (
        "AMENDED",
        [{"dealId": deal, "status": "AMENDED"}],
    )
    assert _d(dealer.positions()[deal]["stopLevel"]) == new_stop
    _views_agree(dealer)
    balance = dealer.balance()
    closed = dealer.confirm(dealer.send("DELETE", f"/positions/{deal}"))
    assert (closed["status"], closed["affectedDeals"]) == (
        "CLOSED",
        [{"dealId": deal, "status": "FULLY_CLOSED"}],
    )
    assert deal not in dealer.positions()
    assert _trades(dealer, deal) == [_d(closed["profit"])]
    assert dealer.balance() == balance + _d(closed["profit"])
    _views_agree(dealer)


def _asks(dealer: Dealer, epic: str, hours: int) -> list[tuple[int, Decimal]]:
    """(second, offer) for every open second of the next `hours`, from the price path."""
    series = dealer.server.simulator.market.series(epic)
    start = epoch_second(dealer.server.simulator.clock.now())
    return [
        (s, series.to_decimal(series.ask_ticks(series.raw_mid_ticks(s))))
        for s in range(start + 1, start + hours * 3600)
        if series.hours.is_open(s)
    ]


def test_limit_order_fills_when_the_price_crosses_its_level(dealer: Dealer) -> None:
    epic, unit = _free_epic(dealer)
    _, ask = dealer.quote(epic)
    path = _asks(dealer, epic, 2)
    tick = _d(dealer.market(epic)["dealingRules"]["minStepDistance"]["value"])
    lowest = min(a for _, a in path)
    assert lowest < ask
    level = (lowest + (ask - lowest) / 4).quantize(tick)  # reached, and below the offer now
    created = dealer.confirm(
        dealer.send(
            "POST",
            "/workingorders",
            {
                "epic": epic,
                "direction": "BUY",
                "size": float(unit),
                "level": float(level),
                "type": "LIMIT",
            },
        )
    )
    order = created["dealId"]
    assert (
        created["affectedDeals"] == [{"dealId": order, "status": "OPENED"}]
        and order in dealer.orders()
    )
    dealer.server.simulator.clock.advance(2 * 3600)
    assert order not in dealer.orders()
    filled = [p for p in dealer.positions().values() if p["workingOrderId"] == order]
    assert len(filled) == 1
    rows = activity(dealer, TEST_NOW, dealer.server.simulator.clock.now())
    executed = [r for r in rows if r["dealId"] == order and r["status"] == "EXECUTED"]
    opened = [r for r in rows if r["dealId"] == filled[0]["dealId"]]
    assert len(executed) == 1 and opened[0]["details"]["workingOrderId"] == order
    assert executed[0]["dateUTC"] == opened[0]["dateUTC"] == filled[0]["createdDateUTC"]
    # Filled at the offer of a second where the offer had reached the level, not before the
    # first such second.
    fill_second = int(parse(executed[0]["dateUTC"]).timestamp())
    offer = dict(path)[fill_second]
    assert offer <= level and _d(filled[0]["level"]) == offer
    assert fill_second >= min(s for s, a in path if a <= level)
    _views_agree(dealer)


def test_orders_are_cancelled_amended_and_expire(dealer: Dealer) -> None:
    epic, unit = _free_epic(dealer)
    _, ask = dealer.quote(epic)
    far = float((ask * Decimal("1.2")).quantize(Decimal(1)))
    stop = dealer.confirm(
        dealer.send(
            "POST",
            "/workingorders",
            {"epic": epic, "direction": "BUY", "size": float(unit), "level": far, "type": "STOP"},
        )
    )
    amended = dealer.confirm(
        dealer.send("PUT", f"/workingorders/{stop['dealId']}", {"level": far + 1})
    )
    assert amended["status"] == "AMENDED" and amended["dealReference"] != stop["dealReference"]
    assert dealer.orders()[stop["dealId"]]["orderLevel"] == far + 1
    cancelled = dealer.confirm(dealer.send("DELETE", f"/workingorders/{stop['dealId']}"))
    assert (cancelled["status"], cancelled["affectedDeals"]) == (
        "DELETED",
        [{"dealId": stop["dealId"], "status": "DELETED"}],
    )
    assert stop["dealId"] not in dealer.orders()
    good_till = dealer.server.simulator.clock.now().replace(microsecond=0) + timedelta(minutes=2)
    expiring = dealer.confirm(dealer.send("POST", "/workingorders", {
        "epic": epic, "direction": "SELL", "size": float(unit), "level": far, "type": "LIMIT",
        "goodTillDate": good_till.strftime("%Y-%m-%dT%H:%M:%S")}))  # fmt: skip
    data = dealer.orders()[expiring["dealId"]]
    assert data["timeInForce"] == "GOOD_TILL_DATE" and data["goodTillDateUTC"].startswith(
        good_till.strftime("%Y-%m-%dT%H:%M:%S")
    )
    dealer.server.simulator.clock.advance(300)
    assert expiring["dealId"] not in dealer.orders()
    rows = activity(dealer, TEST_NOW, dealer.server.simulator.clock.now())
    ends = {(r["dealId"], r["status"], r["dateUTC"]) for r in rows if r["type"] == "WORKING_ORDER"}
    assert (expiring["dealId"], "EXPIRED", good_till.strftime("%Y-%m-%dT%H:%M:%S")) in ends
    assert any(e[:2] == (stop["dealId"], "MODIFIED") for e in ends)
    assert any(e[:2] == (stop["dealId"], "CANCELLED") for e in ends)
    _views_agree(dealer)


def test_a_scripted_working_order_amended_through_the_api(dealer: Dealer) -> None:
    scripted = dealer.scripted_order()
    bid, ask = dealer.quote(scripted["epic"])
    level = float(ask * Decimal("0.5")) if scripted["direction"] == "BUY" else float(bid * 2)
    if scripted["orderType"] == "STOP":
        level = float(ask * 2) if scripted["direction"] == "BUY" else float(bid * Decimal("0.5"))
    level = round(level, 1)
    answer = dealer.send("PUT", f"/workingorders/{scripted['dealId']}", {"level": level})
    assert dealer.confirm(answer)["status"] == "AMENDED"
    assert dealer.orders()[scripted["dealId"]]["orderLevel"] == level
    dealer.server.simulator.clock.advance(3 * 86400)  # its scripted end never comes
    _views_agree(dealer)


def test_a_deal_removed_behind_the_clients_back_leaves_no_trace(dealer: Dealer) -> None:
    deal = next(iter(dealer.positions()))
    account = dealer.get("/session").json()["accountId"]
    removed = dealer.admin.delete(f"/deals/{deal}", params={"account": account})
    assert removed.json() == {"dealId": deal, "removed": "position"}
    assert deal not in dealer.positions()
    assert dealer.admin.delete(f"/deals/{deal}", params={"account": account}).status_code == 404
    dealer.server.simulator.clock.advance(8 * 86400)
    rows = activity(dealer, TEST_NOW, dealer.server.simulator.clock.now())
    assert [r for r in rows if r["dealId"] == deal] == []
    assert dealer.balance() == _truth_balance(dealer)


def test_a_filled_order_nets_against_the_opposite_position(dealer: Dealer) -> None:
    """Netting applies to fills too: a SELL STOP below the price closes the BUY it protects."""
    epic, unit = _free_epic(dealer)
    bought = dealer.confirm(
        dealer.send("POST", "/positions", {"epic": epic, "direction": "BUY", "size": float(unit)})
    )
    position = bought["affectedDeals"][0]["dealId"]
    series = dealer.server.simulator.market.series(epic)
    start = epoch_second(dealer.server.simulator.clock.now())
    bids = [
        series.to_decimal(series.bid_ticks(series.raw_mid_ticks(s)))
        for s in range(start + 1, start + 6 * 3600)
        if series.hours.is_open(s)
    ]
    bid, _ = dealer.quote(epic)
    tick = _d(dealer.market(epic)["dealingRules"]["minStepDistance"]["value"])
    level = (min(bids) + (bid - min(bids)) / 4).quantize(tick)
    assert level < bid
    order = dealer.confirm(
        dealer.send("POST", "/workingorders", {"epic": epic, "direction": "SELL",
                    "size": float(unit), "level": float(level), "type": "STOP"})
    )["dealId"]  # fmt: skip
    dealer.server.simulator.clock.advance(6 * 3600)
    assert order not in dealer.orders() and position not in dealer.positions()
    assert not [p for p in dealer.positions().values() if p["workingOrderId"] == order]
    rows = activity(dealer, TEST_NOW, dealer.server.simulator.clock.now())
    closed = [r for r in rows if r["dealId"] == position and r["details"].get("actions")
              and r["details"]["actions"][0]["actionType"] == "POSITION_CLOSED"]  # fmt: skip
    assert len(closed) == 1 and closed[0]["source"] == "SYSTEM"
    assert dealer.balance() == _truth_balance(dealer)
    _views_agree(dealer)
