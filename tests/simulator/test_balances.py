"""Balances from checkpointed day totals: exact, equal to the served history, never stale."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ledger_etl.simulator import Clock, SimulatorConfig, SimulatorServer, WorldConfig
from ledger_etl.simulator.balances import DayTotals
from ledger_etl.simulator.catalog import MarketData
from ledger_etl.simulator.events import HORIZON_DAYS
from ledger_etl.simulator.world import World
from tests.conftest import ApiSession

NOW = datetime(2025, 5, 20, 14, 30, tzinfo=UTC)
WORLD = WorldConfig(seed=11, start=date(2025, 1, 1), accounts=3, rows_per_day=30)


def _served_total(api: ApiSession, account_id: str) -> Decimal:
    """Every transaction `GET /history/transactions` serves from the start to now."""
    if api.get("/session").json()["accountId"] != account_id:
        assert api.switch(account_id).status_code == 200
    rows = api.get(
        "/history/transactions",
        **{"from": "2025-01-01T00:00:00", "to": NOW.strftime("%Y-%m-%dT%H:%M:%S")},
    ).json()["transactions"]
    assert rows
    return sum((Decimal(r["size"]) for r in rows), Decimal(0))


def test_login_after_a_restart_reads_the_checkpoint_and_matches_the_history(
    tmp_path: Path,
) -> None:
    """A second simulator on the same checkpoint generates only the days a login looks at, and
    every balance it reports is the exact sum of the rows its history endpoint serves."""
    config = SimulatorConfig(world=WORLD, cache_dir=tmp_path, history_bounds="half-open")
    first = SimulatorServer(config, clock=Clock(NOW)).start()
    try:
        first_api = ApiSession(first)
        login_balance = first_api.login().json()["accountInfo"]["balance"]
        first_api.close()
    finally:
        first.stop()
    assert list(tmp_path.glob("balances-*.json"))

    second = SimulatorServer(config, clock=Clock(NOW)).start()
    api = ApiSession(second)
    try:
        info = api.login().json()["accountInfo"]
        # Today's rows and the open positions come from the last HORIZON_DAYS + 1 source days;
        # everything older must come from the checkpoint.
        assert second.simulator.world.days_generated <= HORIZON_DAYS + 1
        assert info["balance"] == login_balance
        accounts = api.get("/accounts").json()["accounts"]
        assert len(accounts) == WORLD.accounts
        for account in accounts:
            served = _served_total(api, account["accountId"])
            assert Decimal(str(account["balance"]["balance"])) == served
            truth = api.admin.get(
                "/truth/balance", params={"account": account["accountId"], "at": NOW.isoformat()}
            ).json()
            assert Decimal(truth["balance"]) == served
    finally:
        api.close()
        second.stop()


def _balances(world: World, at: datetime) -> list[Decimal]:
    return [world.balance_at(a, at) for a in range(len(world.accounts))]


def _checkpoint_for(config: WorldConfig, directory: Path) -> Path:
    path = DayTotals(World(config, MarketData(config.seed)), directory).path
    assert path is not None
    return path


@pytest.mark.parametrize("damage", ["another world", "not json", "a total off by a cent"])
def test_a_foreign_or_damaged_checkpoint_is_not_trusted(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    expected = _balances(World(WORLD, MarketData(WORLD.seed)), NOW)
    source = tmp_path / "source"
    if damage == "another world":
        other = WorldConfig(seed=12, start=WORLD.start, accounts=3, rows_per_day=30)
        _balances(World(other, MarketData(other.seed), checkpoint_dir=source), NOW)
        found = list(source.glob("balances-*.json"))
        assert len(found) == 1
        target = _checkpoint_for(WORLD, tmp_path)
        shutil.copy(found[0], target)
    else:
        _balances(World(WORLD, MarketData(WORLD.seed), checkpoint_dir=tmp_path), NOW)
        target = _checkpoint_for(WORLD, tmp_path)
        if damage == "not json":
            target.write_text(target.read_text()[:-40], encoding="utf-8")
        else:
            body = json.loads(target.read_text())
            body["running"][0][-1] = str(Decimal(body["running"][0][-1]) + Decimal("0.01"))
            target.write_text(json.dumps(body), encoding="utf-8")

    reopened = World(WORLD, MarketData(WORLD.seed), checkpoint_dir=tmp_path)
    assert _balances(reopened, NOW) == expected
    assert "ignoring balance checkpoint" in caplog.text
    # The damaged file was replaced by a correct one, which a third world can use as it is.
    third = World(WORLD, MarketData(WORLD.seed), checkpoint_dir=tmp_path)
    assert _balances(third, NOW) == expected
    assert third.days_generated <= HORIZON_DAYS + 1


def test_warm_up_leaves_a_login_nothing_to_generate() -> None:
    world = World(WORLD, MarketData(WORLD.seed))
    world.warm_up(NOW)
    generated = world.days_generated
    balances = _balances(world, NOW)
    world.open_positions(0, NOW)
    assert world.days_generated == generated
    assert balances == _balances(World(WORLD, MarketData(WORLD.seed)), NOW)
