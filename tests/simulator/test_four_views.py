"""One world, four views: positions, working orders, activity and transactions agree at any
instant of the scripted history, for every account, over real HTTP."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta

import pytest

from ledger_etl.simulator import SimulatorServer
from tests.conftest import TEST_NOW, ApiSession, make_server
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
