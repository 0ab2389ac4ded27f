"""The simulated world: determinism, balance consistency, variety and volume."""

from __future__ import annotations

import resource
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from ledger_etl.simulator import Clock, SimulatorConfig, SimulatorServer, WorldConfig
from ledger_etl.simulator.catalog import MarketData
from ledger_etl.simulator.world import World
from tests.conftest import TEST_START, ApiSession, make_server

PAST_DAY = {"from": "2025-08-20T00:00:00", "to": "2025-08-21T00:00:00"}


def _day_rows(server: SimulatorServer) -> dict[str, object]:
    api = ApiSession(server)
    try:
        api.login()
        out: dict[str, object] = {"accounts": [a["accountId"] for a in api.accounts()]}
        for account in out["accounts"]:  # type: ignore[attr-defined]
            if api.get("/session").json()["accountId"] != account:
                api.switch(account)
            out[f"{account}/tx"] = api.get("/history/transactions", **PAST_DAY).json()
            out[f"{account}/act"] = api.get("/history/activity", **PAST_DAY, detailed="true").json()
        return out
    finally:
        api.close()


def test_same_seed_same_day_same_rows_whenever_started() -> None:
    """Two instances, started at different simulated 'nows', agree on a past day's rows."""
    config = SimulatorConfig(world=WorldConfig(seed=42, start=TEST_START))
    early = SimulatorServer(config, clock=Clock(datetime(2025, 9, 1, tzinfo=UTC))).start()
    late = SimulatorServer(config, clock=Clock(datetime(2026, 6, 1, tzinfo=UTC))).start()
    try:
        first, second = _day_rows(early), _day_rows(late)
    finally:
        early.stop()
        late.stop()
    assert first == second
    assert first[f"{first['accounts'][0]}/tx"]["transactions"]  # type: ignore[index]


def test_different_seed_different_world() -> None:
    a = make_server(seed=1)
    b = make_server(seed=2)
    try:
        assert _day_rows(a) != _day_rows(b)
    finally:
        a.stop()
        b.stop()


def test_account_balance_equals_sum_of_ground_truth_transactions(shared_api: ApiSession) -> None:
    clock = shared_api.server.simulator.clock
    accounts = shared_api.get("/accounts").json()["accounts"]
    now = clock.now()
    for account in accounts:
        truth = shared_api.admin.get(
            "/truth/transactions",
            params={
                "account": account["accountId"],
                "from": "2000-01-01T00:00:00Z",
                "to": now.isoformat(),
            },
        ).json()["transactions"]
        total = sum((Decimal(r["size"]) for r in truth), Decimal(0))
        assert Decimal(str(account["balance"]["balance"])) == total
        balance = shared_api.admin.get(
            "/truth/balance", params={"account": account["accountId"], "at": now.isoformat()}
        ).json()
        assert Decimal(balance["balance"]) == total


def test_balance_at_an_instant_rolls_forward(shared_api: ApiSession) -> None:
    account = shared_api.accounts()[0]["accountId"]

    def balance(at: str) -> Decimal:
        return Decimal(
            shared_api.admin.get("/truth/balance", params={"account": account, "at": at}).json()[
                "balance"
            ]
        )

    rows = shared_api.admin.get(
        "/truth/transactions",
        params={"account": account, "from": "2025-07-01T00:00:00Z", "to": "2025-08-01T00:00:00Z"},
    ).json()["transactions"]
    movement = sum((Decimal(r["size"]) for r in rows), Decimal(0))
    assert balance("2025-08-01T00:00:00Z") - balance("2025-07-01T00:00:00Z") == movement


def test_variety_of_types_accounts_and_lifecycles(shared_api: ApiSession) -> None:
    accounts = shared_api.accounts()
    assert len(accounts) >= 2 and len({a["currency"] for a in accounts}) >= 2
    tx_types: Counter[str] = Counter()
    act_kinds: Counter[tuple[str, str, str]] = Counter()
    actions: Counter[str] = Counter()
    for account in accounts:
        params = {
            "account": account["accountId"],
            "from": "2025-01-01T00:00:00Z",
            "to": "2026-01-01T00:00:00Z",
        }
        for row in shared_api.admin.get("/truth/transactions", params=params).json()[
            "transactions"
        ]:
            tx_types[row["transactionType"]] += 1
        for row in shared_api.admin.get("/truth/activity", params=params).json()["activities"]:
            act_kinds[(row["type"], row["status"], row["source"])] += 1
            for action in row["details"].get("actions", []):
                actions[action["actionType"]] += 1
    assert len(tx_types) >= 10, tx_types
    assert {"DEPOSIT", "WITHDRAWAL", "TRADE", "SWAP", "TRADE_COMMISSION", "TRANSFER"} <= set(
        tx_types
    )
    kinds = {k[:2] for k in act_kinds}
    assert {
        ("WORKING_ORDER", "CREATED"),
        ("WORKING_ORDER", "EXECUTED"),
        ("WORKING_ORDER", "CANCELLED"),
        ("WORKING_ORDER", "EXPIRED"),
        ("POSITION", "ACCEPTED"),
        ("POSITION", "REJECTED"),
        ("EDIT_STOP_AND_LIMIT", "MODIFIED"),
        ("SWAP", "ACCEPTED"),
    } <= kinds
    assert {"POSITION_OPENED", "POSITION_CLOSED", "POSITION_PARTIALLY_CLOSED"} <= set(actions)
    assert {k[2] for k in act_kinds} >= {"USER", "SYSTEM", "SL", "TP"}


def test_filled_working_order_links_to_a_new_position(shared_api: ApiSession) -> None:
    account = shared_api.accounts()[0]["accountId"]
    rows = shared_api.admin.get(
        "/truth/activity",
        params={"account": account, "from": "2025-03-01T00:00:00Z", "to": "2025-05-01T00:00:00Z"},
    ).json()["activities"]
    executed = [r for r in rows if r["type"] == "WORKING_ORDER" and r["status"] == "EXECUTED"]
    assert executed
    order = executed[0]
    opened = [
        r
        for r in rows
        if r["type"] == "POSITION" and r["details"].get("workingOrderId") == order["dealId"]
    ]
    assert len(opened) == 1
    assert opened[0]["dealId"] != order["dealId"]
    assert opened[0]["dateUTC"] == order["dateUTC"]


def test_heavy_volume_is_lazy_and_bounded() -> None:
    """5,000 rows a day per account: produced day by day, memory stays bounded."""
    world = World(
        WorldConfig(seed=3, start=date(2025, 1, 1), rows_per_day=5000), MarketData(3), cache_days=12
    )
    started = time.perf_counter()
    counts = []
    day = date(2025, 3, 1)
    for _ in range(6):
        tx = world.rows_on(day, 0, "transaction")
        act = world.rows_on(day, 0, "activity")
        counts.append(len(tx) + len(act))
        day += timedelta(days=1)
    elapsed = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"heavy world: {sum(counts)} rows over 6 days in {elapsed:.1f}s, max RSS {rss:.0f} MiB")
    assert min(counts) >= 4000, counts
    assert len(world._cache) <= 12  # only a bounded window of days is ever held
