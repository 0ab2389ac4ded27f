"""The watchlists and client_sentiment assets, their check and schedule, through Dagster."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pytest
from sqlalchemy import Engine

from ledger_etl.defs.market_extras.assets import (
    client_sentiment,
    client_sentiment_schedule,
    sentiment_poll_complete,
    watchlists,
)
from ledger_etl.defs.resources import LedgerResource
from ledger_etl.market.sentiment import sentiment_series
from ledger_etl.market.watchlists import watchlist_epics
from ledger_etl.simulator import SimulatorServer
from tests.conftest import database_url_of
from tests.dagster.conftest import capital_for
from tests.market_extras.conftest import api_key_of, market_server

SELECTION = [watchlists, client_sentiment, sentiment_poll_complete]


@pytest.fixture
def running_sim() -> Iterator[SimulatorServer]:
    """A simulator whose clock runs: each asset logs in, and logins are one a second."""
    server = market_server()
    yield server
    server.stop()


def _resources(server: SimulatorServer, engine: Engine, tmp_path) -> dict[str, object]:
    return {
        "capital": capital_for(server, api_key=api_key_of(server)),
        "ledger": LedgerResource(
            database_url=database_url_of(engine), export_dir=str(tmp_path / "exports")
        ),
    }


def test_asset_bodies_record_snapshots(running_sim: SimulatorServer, tmp_path) -> None:
    """The fast variant: the asset and check functions invoked directly on SQLite (the whole
    job through Dagster's executor, on both backends, is the slow test below)."""
    from ledger_etl.defs.market_extras.assets import SentimentConfig
    from ledger_etl.ledger.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    resources = _resources(running_sim, engine, tmp_path)
    listed = watchlists(dg.build_asset_context(), **resources)
    assert listed.metadata["watchlists"] == 2
    observed = client_sentiment(dg.build_asset_context(), SentimentConfig(), **resources)
    assert observed.metadata["new_rows"] == 6
    assert watchlist_epics(engine, "watchlist1") == ["GOLD", "EURUSD", "US500", "BTCUSD"]
    assert len(sentiment_series(engine)) == 6
    assert sentiment_poll_complete(resources["ledger"]).passed
    only = client_sentiment(dg.build_asset_context(), SentimentConfig(epics=["NOPE"]), **resources)
    assert only.metadata["unknown"].value == ["NOPE"]
    assert not sentiment_poll_complete(resources["ledger"]).passed


@pytest.mark.slow
def test_snapshots_materialize_into_the_ledger(
    running_sim: SimulatorServer, ledger_engine: Engine, tmp_path
) -> None:
    resources = _resources(running_sim, ledger_engine, tmp_path)
    with dg.instance_for_test() as instance:
        first = dg.materialize(SELECTION, instance=instance, resources=resources)
        assert first.success
        assert watchlist_epics(ledger_engine, "Hello world") == ["SILVER", "NATURALGAS"]
        observed = sentiment_series(ledger_engine)
        assert {p.epic for p in observed} == {
            "SILVER", "NATURALGAS", "GOLD", "EURUSD", "US500", "BTCUSD",
        }  # fmt: skip
        (check,) = first.get_asset_check_evaluations()
        assert check.passed
        meta = first.asset_materializations_for_node("client_sentiment")[0].metadata
        assert meta["new_rows"].value == 6

        running_sim.simulator.clock.advance(900)
        second = dg.materialize(SELECTION, instance=instance, resources=resources)
        assert second.success
        assert len(sentiment_series(ledger_engine)) == 12  # one more observation per market

        running_sim.simulator.clock.advance(900)
        config = {"ops": {"client_sentiment": {"config": {"epics": ["GOLD", "NOPE"]}}}}
        partial = dg.materialize(
            SELECTION, instance=instance, resources=resources, run_config=config
        )
        assert partial.success  # GOLD was observed; NOPE is reported, not fatal
        (check,) = partial.get_asset_check_evaluations()
        assert not check.passed and check.metadata["unknown"].value == ["NOPE"]


def test_schedule_asks_for_one_run_per_tick() -> None:
    tick = datetime(2026, 1, 15, 12, 15, tzinfo=UTC)
    context = dg.build_schedule_context(scheduled_execution_time=tick)
    request = client_sentiment_schedule(context)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == "market-snapshots-2026-01-15T12:15"
    assert client_sentiment_schedule.cron_schedule == "*/15 * * * *"
