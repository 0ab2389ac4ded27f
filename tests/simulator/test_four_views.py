"""One world, four views: positions, working orders, activity and transactions agree at any
instant of the scripted history, for every account, over real HTTP."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from ledger_etl.simulator import SimulatorServer
from tests.conftest import TEST_NOW, ApiSession, make_server
from tests.simulator.dealing_helpers import Dealer
from tests.simulator.views import HORIZON, activity, assert_views_agree, parse, transactions, wire


@pytest.fixture(scope="module")
def views_sim() -> Iterator[SimulatorServer]:
    server = make_server(
        rate_limit_per_second=0,
        login_rate_per_second=0,
        history_bounds="half-open",
        session_idle_seconds=10**9,
    )
    server.simulator.clock.freeze()
    yield server
    server.stop()


def _sessions(server: SimulatorServer) -> list[ApiSession]:
    """One logged-in session per account."""
    sessions = []
    for account in ApiSession(server).accounts():
        api = ApiSession(server)
        api.login()
        if api.get("/session").json()["accountId"] != account["accountId"]:
            assert api.switch(account["accountId"]).status_code == 200
        sessions.append(api)
    return sessions


def test_four_views_agree_at_20_random_instants_for_two_accounts(
    views_sim: SimulatorServer,
) -> None:
    clock = views_sim.simulator.clock
    rng = random.Random(14)
    span = 10 * 86400
    instants = sorted(
        TEST_NOW - timedelta(seconds=rng.uniform(0, span), microseconds=rng.randrange(10**6))
        for _ in range(20)
    )
    start, end = instants[0] - HORIZON, instants[-1] + timedelta(seconds=1)
    clock.set(end)
    sessions = _sessions(views_sim)
    assert len(sessions) == 2
    history = {
        id(api): (activity(api, start, end), transactions(api, start, end)) for api in sessions
    }
    seen_positions = seen_orders = 0
    for at in instants:
        clock.set(at)
        for api in sessions:
            acts, txs = history[id(api)]
            seen = assert_views_agree(api, at, acts, txs)
            seen_positions += len(seen["positions"])
            seen_orders += len(seen["orders"])
            # At the instant itself the history shows exactly the rows up to it.
            recent = api.get("/history/activity", lastPeriod=86400).json()["activities"]
            expected = [r for r in acts if at - timedelta(days=1) <= parse(r["dateUTC"]) <= at]
            assert len(recent) == len(expected), wire(at)
    # Not a vacuous agreement: the instants saw open positions and working orders.
    assert seen_positions >= 20 and seen_orders >= 5, (seen_positions, seen_orders)
    for api in sessions:
        api.close()


def _deal_a_day(d: Dealer, rng: random.Random) -> None:
    """Market deals, netting, amendments, closes and orders at random moments of one day."""
    clock = d.server.simulator.clock

    def later() -> None:
        clock.advance(rng.uniform(60, 1800))

    def post(path: str, body: dict[str, object]) -> dict[str, object]:
        answer = d.send("POST", path, body)
        assert answer.status_code == 200, answer.text
        later()
        return d.confirm(answer)

    a = post("/positions", {"epic": "GOLD", "direction": "BUY", "size": 1})
    post("/positions", {"epic": "GOLD", "direction": "BUY", "size": 0.5})
    post("/positions", {"epic": "GOLD", "direction": "SELL", "size": 1.2})
    mine = [p for p in d.positions().values() if "-54c5-" in p["dealId"]]
    for p in mine:
        assert d.send("PUT", f"/positions/{p['dealId']}", {"stopDistance": 60}).status_code == 200
        later()
    _, ask = d.quote("EURUSD")
    near = float((ask * Decimal("0.9995")).quantize(Decimal("0.00001")))
    far = float((ask * Decimal("0.98")).quantize(Decimal("0.00001")))
    post("/workingorders", {"epic": "EURUSD", "direction": "BUY", "size": 1000, "level": near,
                            "type": "LIMIT"})  # fmt: skip
    until = (clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    post("/workingorders", {"epic": "EURUSD", "direction": "BUY", "size": 2000, "level": far,
                            "type": "LIMIT", "goodTillDate": until})  # fmt: skip
    cancel = post("/workingorders", {"epic": "EURUSD", "direction": "SELL", "size": 1000,
                                     "level": far, "type": "STOP"})  # fmt: skip
    assert d.send("DELETE", f"/workingorders/{cancel['dealId']}").status_code == 200
    later()
    for p in d.positions().values():  # close one of its own, and one of the script's
        if p["dealId"] != a["affectedDeals"][0]["dealId"]:
            if d.send("DELETE", f"/positions/{p['dealId']}").json().get("dealReference"):
                later()
                break
    clock.advance(6 * 3600)


def test_four_views_agree_at_20_random_instants_after_dealing_on_two_accounts(
    views_sim: SimulatorServer,
) -> None:
    """Dealing on both accounts, then the views at random instants across the dealing: sizes,
    stops, orders, closes with TRADE rows, and balances that move by the transactions."""
    clock = views_sim.simulator.clock
    clock.set(TEST_NOW + timedelta(days=5))  # a Tuesday, after the other test's instants
    begin = clock.now()
    dealers = []
    for account in ApiSession(views_sim).accounts():
        d = Dealer(views_sim)
        d.login()
        if d.get("/session").json()["accountId"] != account["accountId"]:
            assert d.switch(account["accountId"]).status_code == 200
        dealers.append(d)
    rng = random.Random(15)
    for d in dealers:
        _deal_a_day(d, rng)
    end = clock.now()
    instants = sorted(begin + (end - begin) * rng.random() for _ in range(20))
    start = begin - HORIZON
    history = {id(d): (activity(d, start, end), transactions(d, start, end)) for d in dealers}
    baseline = {}
    for at in instants:
        clock.set(at)
        for d in dealers:
            acts, txs = history[id(d)]
            assert_views_agree(d, at, acts, txs)
            balance = d.balance()
            first = baseline.setdefault(id(d), (at, balance))
            moved = sum(
                (Decimal(t["size"]) for t in txs if first[0] <= parse(t["dateUtc"]) < at),
                Decimal(0),
            )
            assert balance - first[1] == moved, at
    dealt = [r for d in dealers for r in history[id(d)][0] if "-54c5-" in r["dealId"]]
    assert len(dealt) >= 20  # the dealing happened, on both accounts
    for d in dealers:
        d.close()
