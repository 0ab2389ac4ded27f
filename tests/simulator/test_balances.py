"""Balances from drawn day totals: exact, equal to the served history, never a whole day built.

The world draws each account's net of every day and settlement slot first; the rows of a slot
add up to it through the slot's settlement row. These tests check that the history, the balances
and the open deals agree, and that a login builds only the items it needs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from ledger_etl.simulator import Clock, SimulatorConfig, SimulatorServer, WorldConfig
from ledger_etl.simulator.balances import SETTLEMENT_TYPE, slots_per_day
from ledger_etl.simulator.catalog import MarketData
from ledger_etl.simulator.events import HORIZON_DAYS
from ledger_etl.simulator.world import World
from tests.conftest import ApiSession

NOW = datetime(2025, 3, 20, 14, 30, 0, 123000, tzinfo=UTC)
WORLD = WorldConfig(seed=11, start=date(2025, 3, 1), accounts=3, rows_per_day=150)
MIDNIGHT = datetime(2025, 3, 20, tzinfo=UTC)


def _world(config: WorldConfig = WORLD) -> World:
    return World(config, MarketData(config.seed))


def _history_total(world: World, account: int, end: datetime) -> Decimal:
    start = datetime(2025, 3, 1, tzinfo=UTC)
    rows = world.rows_between(account, "transaction", start, end)
    return sum((r.fields["size"] for r in rows), Decimal(0))


def test_a_login_builds_no_whole_day_and_reports_the_served_history() -> None:
    config = SimulatorConfig(world=WORLD, history_bounds="half-open")
    server = SimulatorServer(config, clock=Clock(NOW)).start()
    api = ApiSession(server)
    try:
        info = api.login().json()["accountInfo"]
        assert server.simulator.world.days_generated == 0  # items only, never a whole day
        accounts = api.get("/accounts").json()["accounts"]
        assert len(accounts) == WORLD.accounts
        assert info["balance"] == next(a for a in accounts if a["preferred"])["balance"]["balance"]
        for item in accounts:
            if api.get("/session").json()["accountId"] != item["accountId"]:
                assert api.switch(item["accountId"]).status_code == 200
            rows = api.get(
                "/history/transactions",
                **{"from": "2025-03-01T00:00:00", "to": NOW.strftime("%Y-%m-%dT%H:%M:%S")},
            ).json()["transactions"]
            served = sum((Decimal(r["size"]) for r in rows), Decimal(0))
            # The history's `to` has whole seconds: the balance at that second is the sum.
            at = NOW.replace(microsecond=0)
            index = next(a.index for a in server.simulator.world.accounts
                         if a.account_id == item["accountId"])  # fmt: skip
            assert served == server.simulator.world.balance_at(index, at)
            assert Decimal(str(item["balance"]["balance"])) == server.simulator.world.balance_at(
                index, NOW
            )
    finally:
        api.close()
        server.stop()


def test_balance_is_the_sum_of_the_rows_before_any_instant() -> None:
    """At slot boundaries, on a settlement's millisecond, at midnight and in between."""
    world = _world()
    totals = world.totals
    assert totals.slots == slots_per_day(WORLD.rows_per_day) > 1
    instants = [MIDNIGHT, NOW]
    for slot in range(totals.slots):
        settle = totals.settlement_time(MIDNIGHT.date(), slot)
        instants += [totals.slot_start(MIDNIGHT.date(), slot), settle, settle + timedelta(
            microseconds=1), settle + timedelta(milliseconds=1)]  # fmt: skip
    for account in range(WORLD.accounts):
        for instant in instants:
            fresh = _world()  # nothing cached: the balance is computed the cold way
            assert fresh.balance_at(account, instant) == _history_total(world, account, instant)
            assert fresh.days_generated == 0


def test_every_slot_adds_up_to_its_drawn_net_with_one_sane_settlement() -> None:
    world = _world()
    totals = world.totals
    for account in range(WORLD.accounts):
        for back in range(0, 19, 2):
            day = MIDNIGHT.date() - timedelta(days=back)
            rows = world.scripted_rows_on(day, account, "transaction")
            nets = totals.slot_nets(account, day)
            for slot, net in enumerate(nets):
                mine = [r for r in rows if totals.slot_of(r.ts) == slot]
                assert sum((r.fields["size"] for r in mine), Decimal(0)) == net
                settlements = [r for r in mine if r.fields["note"] == "Settlement adjustment"]
                assert len(settlements) <= 1
                for row in settlements:  # the slot's first row, after those of its ms
                    assert row.ts == totals.slot_start(day, slot) == mine[0].ts
                    assert row.fields["transactionType"] == SETTLEMENT_TYPE
                    # Of the size of a slot's trading, never a balance's worth.
                    assert abs(row.fields["size"]) < 10 * world.accounts[account].base_amount
            # A day never ends below the account's base amount.
            if day > world.accounts[account].opened:
                end = totals.before(account, day + timedelta(days=1))
                assert end >= world.accounts[account].base_amount


def test_items_built_alone_are_the_items_of_the_whole_day() -> None:
    """Open positions, orders and deal lookups come from items built on their own (lives only
    for positions): they must be exactly what the whole day's generation has."""
    alone, whole = _world(), _world()
    for account in range(WORLD.accounts):
        positions = alone.open_positions(account, NOW)
        orders = alone.open_orders(account, NOW)
        assert positions and alone.days_generated == 0
        expected_positions, expected_orders = [], []
        for back in range(HORIZON_DAYS + 1):
            events = whole.day_events(NOW.date() - timedelta(days=back))
            expected_positions += [p for p in events.positions if p.account == account
                                   and p.opened <= NOW < p.closed]  # fmt: skip
            expected_orders += [o for o in events.orders if o.account == account
                                and o.created <= NOW < o.ended]  # fmt: skip
        key = lambda life: life.deal_id  # noqa: E731
        assert sorted(positions, key=key) == sorted(expected_positions, key=key)
        assert sorted(orders, key=key) == sorted(expected_orders, key=key)
        for life in [*expected_positions[:5], *expected_orders[:5]]:
            assert _world().find_deal(life.deal_reference) == life
    # Every row of a day, item by item, is the row of the whole day.
    day = NOW.date() - timedelta(days=2)
    built = [
        (r.ts, r.kind, r.order, r.fields)
        for account in range(WORLD.accounts)
        for planned in alone.plan(account, day)
        for r in alone.item(account, day, planned)[0]
    ]
    generated = [
        (r.ts, r.kind, r.order, r.fields) for r in whole.day_events(day).rows if r.order >= 64
    ]  # fmt: skip  (order < 64: the day's cash rows)
    key2 = lambda r: (r[1], r[0], r[2], repr(r[3]))  # noqa: E731
    assert sorted(built, key=key2) == sorted(generated, key=key2)


def test_the_same_seed_draws_the_same_balances_in_any_order() -> None:
    """Balances do not depend on which instant was asked first."""
    early, late = datetime(2025, 3, 7, 9, tzinfo=UTC), NOW
    forward, backward = _world(), _world()
    a = [forward.balance_at(0, early), forward.balance_at(0, late)]
    b = [backward.balance_at(0, late), backward.balance_at(0, early)]
    assert a == b[::-1]
