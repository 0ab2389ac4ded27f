"""The stream client's handling of bad input: unknown epics, too many epics, bad options."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ledger_etl.capital.client import CapitalClient
from ledger_etl.ledger.db import make_engine, upgrade
from ledger_etl.market.stream import BarStream, StreamInputError, StreamOptions
from ledger_etl.simulator import Clock, SimulatorConfig, SimulatorServer, WorldConfig
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD, TEST_NOW, TEST_START


def test_unknown_epics_are_refused_and_the_others_stream(tmp_path: Path) -> None:
    config = SimulatorConfig(world=WorldConfig(seed=42, start=TEST_START)).with_overrides(
        stream_tick_seconds=0.05, rate_limit_per_second=0
    )
    engine: Engine = make_engine(f"sqlite:///{tmp_path / 'l.sqlite'}")
    upgrade(engine)
    with SimulatorServer(config, clock=Clock(TEST_NOW, rate=60)) as sim:
        client = CapitalClient(sim.url, API_KEY, IDENTIFIER, PASSWORD, rate_limit=50)
        stream = BarStream(client, engine, StreamOptions(epics=["BTCUSD", "NOPE"], reconcile_s=1))
        asyncio.run(stream.run(duration=4))
        client.close()
    assert stream.status.rejected_epics == {"NOPE"}
    assert stream.status.quotes > 10 and stream.status.events >= 2


def test_more_than_forty_epics_are_spread_over_connections() -> None:
    options = StreamOptions(epics=[f"E{i}" for i in range(95)] + ["E1"])
    stream = BarStream(None, None, options)  # type: ignore[arg-type]
    assert [len(c) for c in stream.chunks()] == [40, 40, 15]


@pytest.mark.parametrize(("epics", "resolutions"), [([], ["MINUTE"]), (["A"], ["SECOND"])])
def test_bad_options_are_a_clear_error(epics: list[str], resolutions: list[str]) -> None:
    with pytest.raises(StreamInputError):
        StreamOptions(epics=epics, resolutions=resolutions)
