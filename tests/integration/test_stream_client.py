"""The stream client's handling of bad input: unknown epics, too many epics, bad options."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ledger_etl.capital.client import CapitalClient
from ledger_etl.ledger.db import make_engine, upgrade
from ledger_etl.market.frames import FrameHandler, SessionExpired, StreamStatus
from ledger_etl.market.hours import OpeningHours
from ledger_etl.market.stream import BarStream, StreamInputError, StreamOptions
from ledger_etl.simulator import Clock, SimulatorConfig, SimulatorServer, WorldConfig
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD, STREAM_WORLD_START, TEST_NOW


def test_unknown_epics_are_refused_and_the_others_stream(tmp_path: Path) -> None:
    config = SimulatorConfig(world=WorldConfig(seed=42, start=STREAM_WORLD_START)).with_overrides(
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


def test_shut_markets_are_silence_not_a_stall(tmp_path: Path) -> None:
    """On a Saturday GOLD sends nothing: the watchdog knows its hours and does not reconnect."""
    config = SimulatorConfig(world=WorldConfig(seed=42, start=STREAM_WORLD_START)).with_overrides(
        stream_tick_seconds=0.05, rate_limit_per_second=0
    )
    engine: Engine = make_engine(f"sqlite:///{tmp_path / 'l.sqlite'}")
    upgrade(engine)
    saturday = datetime(2026, 1, 17, 12, 0, tzinfo=UTC)
    with SimulatorServer(config, clock=Clock(saturday, rate=60)) as sim:
        client = CapitalClient(sim.url, API_KEY, IDENTIFIER, PASSWORD, rate_limit=50)
        options = StreamOptions(epics=["GOLD"], quote_stale_s=1, ohlc_stale_s=1, reconcile_s=1)
        stream = BarStream(client, engine, options)
        asyncio.run(stream.run(duration=4))
        client.close()
    assert stream.status.quotes == 0 and stream.status.reconnects == 0


def test_opening_hours() -> None:
    hours = OpeningHours({"mon": ["00:00 - 22:00", "23:05 - 00:00"], "sat": [], "zone": "UTC"})
    assert hours.is_open(datetime(2026, 1, 12, 21, 59, tzinfo=UTC))  # a Monday
    assert not hours.is_open(datetime(2026, 1, 12, 22, 30, tzinfo=UTC))
    assert hours.is_open(datetime(2026, 1, 12, 23, 30, tzinfo=UTC))
    assert not hours.is_open(datetime(2026, 1, 17, 12, 0, tzinfo=UTC))
    assert OpeningHours({"mon": ["bad"]}).always  # not understood: never trusted to be shut
    assert OpeningHours({"mon": [], "zone": "Europe/London"}).always


@pytest.mark.parametrize(
    "frame",
    [
        {"status": "ERROR", "destination": "session",
         "payload": {"errorCode": "error.invalid.session.token"}},
        {"status": "ERROR", "destination": "ping", "correlationId": "3",
         "errorCode": "error.invalid.session.token", "payload": {}},
    ],
)  # fmt: skip
def test_session_error_is_recognised_wherever_its_code_is(frame: dict) -> None:
    handler = FrameHandler(StreamStatus(), None)
    with pytest.raises(SessionExpired):
        handler.handle(json.dumps(frame), 0)


def test_malformed_and_odd_frames_are_counted_not_fatal() -> None:
    handler = FrameHandler(StreamStatus(), None)
    for text in ('{"status":"OK","destination":"quote","payload":{"epic":"X","bi', "[1]", "{}",
                 '{"status":"OK","destination":"quote","payload":{"epic":"X","bid":true}}',
                 '{"status":"ERROR","destination":"marketData.subscribe",'
                 '"payload":{"errorCode":"error.too-many.epics"}}'):  # fmt: skip
        assert handler.handle(text, 0)[0] == "rejected"
    assert handler.status.rejected == 5
