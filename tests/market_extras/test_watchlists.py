"""Watchlist membership history over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from ledger_etl.capital.client import CapitalClient
from ledger_etl.capital.watchlists import (
    add_to_watchlist,
    create_watchlist,
    delete_watchlist,
    fetch_watchlists,
    remove_from_watchlist,
)
from ledger_etl.cli import main
from ledger_etl.ledger import schema as s
from ledger_etl.market.watchlists import (
    WatchlistNotFound,
    membership_history,
    poll_watchlists,
    record_watchlists,
    stored_watchlists,
    watchlist_epics,
)
from ledger_etl.simulator import SimulatorServer
from tests.market_extras.conftest import cli_env


def _members_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(s.watchlist_members)).scalar_one()


def test_membership_history_after_add_and_remove(
    market_sim: SimulatorServer, client: CapitalClient, ledger_engine: Engine
) -> None:
    clock = market_sim.simulator.clock
    first = poll_watchlists(client, ledger_engine)
    assert sorted(first.created) == ["123456", "123457"]
    assert watchlist_epics(ledger_engine, "watchlist1") == ["GOLD", "EURUSD", "US500", "BTCUSD"]
    rows = _members_rows(ledger_engine)
    assert poll_watchlists(client, ledger_engine).added == []  # nothing changed: no row
    clock.advance(600)
    assert poll_watchlists(client, ledger_engine).added == []
    assert _members_rows(ledger_engine) == rows

    created = create_watchlist(client, "Metals", ["GOLD"])
    add_to_watchlist(client, created.watchlist_id, "SILVER")
    clock.advance(600)
    joined = poll_watchlists(client, ledger_engine)
    assert joined.created == [created.watchlist_id]
    assert joined.added == [(created.watchlist_id, "GOLD"), (created.watchlist_id, "SILVER")]

    remove_from_watchlist(client, created.watchlist_id, "GOLD")
    clock.advance(600)
    left = poll_watchlists(client, ledger_engine)
    assert (left.added, left.removed) == ([], [(created.watchlist_id, "GOLD")])
    assert watchlist_epics(ledger_engine, "Metals") == ["SILVER"]
    # As of an instant between the polls, GOLD was still a member.
    assert watchlist_epics(ledger_engine, "Metals", joined.observed_at) == ["GOLD", "SILVER"]
    assert watchlist_epics(ledger_engine, "Metals", left.observed_at) == ["SILVER"]

    add_to_watchlist(client, created.watchlist_id, "GOLD")  # back again: a second stretch
    clock.advance(600)
    back = poll_watchlists(client, ledger_engine)
    assert back.added == [(created.watchlist_id, "GOLD")]
    gold = [h for h in membership_history(ledger_engine, "Metals") if h.epic == "GOLD"]
    assert [(h.valid_from, h.valid_to) for h in gold] == [
        (joined.observed_at, left.observed_at),
        (back.observed_at, None),
    ]
    assert watchlist_epics(ledger_engine, "Metals") == ["SILVER", "GOLD"]

    delete_watchlist(client, created.watchlist_id)
    clock.advance(600)
    gone = poll_watchlists(client, ledger_engine)
    assert gone.deleted == [created.watchlist_id]
    assert sorted(gone.removed) == [
        (created.watchlist_id, "GOLD"),
        (created.watchlist_id, "SILVER"),
    ]
    with pytest.raises(WatchlistNotFound, match=r"no watchlist 'Metals'.*'Hello world'"):
        watchlist_epics(ledger_engine, "Metals")
    assert watchlist_epics(ledger_engine, "Metals", back.observed_at) == ["SILVER", "GOLD"]
    assert [w.name for w in stored_watchlists(ledger_engine)] == ["Hello world", "watchlist1"]
    with ledger_engine.connect() as conn:
        polls = conn.execute(select(func.count()).select_from(s.watchlist_polls)).scalar_one()
    assert polls == 7


def test_an_older_snapshot_is_refused(
    market_sim: SimulatorServer, client: CapitalClient, ledger_engine: Engine
) -> None:
    early = fetch_watchlists(client)
    market_sim.simulator.clock.advance(60)
    poll_watchlists(client, ledger_engine)
    stale = record_watchlists(ledger_engine, early, "run-late")
    assert stale.stale and stale.added == []


def test_same_names_need_an_id(client: CapitalClient, ledger_engine: Engine) -> None:
    one = create_watchlist(client, "Twins", ["GOLD"])
    two = create_watchlist(client, "Twins", ["SILVER"])
    poll_watchlists(client, ledger_engine)
    with pytest.raises(WatchlistNotFound, match="2 watchlists are called 'Twins'"):
        watchlist_epics(ledger_engine, "Twins")
    assert watchlist_epics(ledger_engine, one.watchlist_id) == ["GOLD"]
    assert watchlist_epics(ledger_engine, two.watchlist_id) == ["SILVER"]


def test_cli_watchlists(market_sim: SimulatorServer, sqlite_engine: Engine) -> None:
    env = cli_env(market_sim, sqlite_engine)
    runner = CliRunner()
    listed = runner.invoke(main, ["watchlists"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "Hello world" in listed.output and "SILVER, NATURALGAS" in listed.output
    assert "+ 123456 SILVER" in listed.output
    history = runner.invoke(main, ["watchlists", "--history", "Hello world"], env=env)
    assert history.exit_code == 0, history.output
    assert "123456\tSILVER\t[2026-01-15T12:00:00Z, -)" in history.output
    missing = runner.invoke(main, ["watchlists", "--history", "nope"], env=env)
    assert missing.exit_code == 2 and "no watchlist 'nope'" in missing.output


def test_a_deleted_list_is_not_the_same_as_an_unreadable_one(
    market_sim: SimulatorServer, client: CapitalClient, ledger_engine: Engine
) -> None:
    """A list that cannot be read is left as it was: no removals are invented for it."""
    poll_watchlists(client, ledger_engine)
    market_sim.simulator.clock.advance(60)
    snapshot = fetch_watchlists(client)
    kept = [w for w in snapshot.watchlists if w.summary.id != "123457"]
    partial = type(snapshot)(
        snapshot.observed_at, kept, {"123457": "404 while reading"}, [], snapshot.requests
    )
    changes = record_watchlists(ledger_engine, partial, "run-partial")
    assert (changes.removed, changes.deleted) == ([], [])
    assert watchlist_epics(ledger_engine, "watchlist1") == ["GOLD", "EURUSD", "US500", "BTCUSD"]
    assert changes.observed_at - snapshot.observed_at == timedelta(0)


def test_concurrent_pollers_record_each_change_once(
    client: CapitalClient, ledger_engine: Engine
) -> None:
    """Two pollers recording the same snapshot at once: one writes, the other finds it done."""
    from concurrent.futures import ThreadPoolExecutor

    from ledger_etl.ledger.db import upgrade
    from ledger_etl.market.template_store import import_template
    from ledger_etl.market.templates import load_template_file
    from tests.market_extras.test_templates import BOARD

    upgrade(ledger_engine)
    snapshot = fetch_watchlists(client)
    template = load_template_file(BOARD)
    with ThreadPoolExecutor(4) as pool:
        lists = list(
            pool.map(lambda n: record_watchlists(ledger_engine, snapshot, f"r{n}"), range(4))
        )
        versions = list(
            pool.map(lambda n: import_template(ledger_engine, template, None), range(4))
        )
    assert sum(len(c.added) for c in lists) == 6  # each member joined once
    assert _members_rows(ledger_engine) == 6
    assert sorted(v.created for v in versions) == [False, False, False, True]
    assert {v.version for v in versions} == {1}
