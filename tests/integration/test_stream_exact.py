"""Bars are exact: streamed through drops, stalls, skipped / early / duplicate / malformed
events and a session expiry, the stored MINUTE bars equal the simulator's ground truth."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from ledger_etl.capital.client import CapitalClient
from ledger_etl.intervals import Window
from ledger_etl.ledger.db import upgrade
from ledger_etl.market.backfill import align_down
from ledger_etl.market.bars import read_bars
from ledger_etl.market.stream import BarStream, StreamOptions
from ledger_etl.simulator import Clock, SimulatorConfig, SimulatorServer, WorldConfig
from ledger_etl.simulator.catalog import INSTRUMENTS
from ledger_etl.simulator.synthetic import synthetic_epic
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD, STREAM_WORLD_START, TEST_NOW

FAULTS = {
    "seed": 11,
    "stream": [
        {"kind": "drop", "destination": "quote", "every": 700},
        {"kind": "stall", "destination": "quote", "nth": [400], "seconds": 1000},
        {"kind": "skip_ohlc", "probability": 0.03},
        {"kind": "early_ohlc", "probability": 0.03},
        {"kind": "duplicate", "probability": 0.03},
        {"kind": "malformed", "probability": 0.01},
    ],
}


def assert_bars_equal_truth(sim: SimulatorServer, engine: Engine, epics: list[str],
                            window: Window) -> int:  # fmt: skip
    checked = 0
    for epic in epics:
        truth = httpx.get(
            sim.url + "/_sim/truth/bars",
            params={"epic": epic, "from": window.start.isoformat(), "to": window.end.isoformat()},
            timeout=30,
        ).json()["bars"]
        stored = read_bars(engine, epic, "MINUTE", window)
        by_t = {row["t"]: row for row in stored}
        assert len(by_t) == len(stored)
        want_times = {datetime.fromisoformat(b["t"]) for b in truth}
        assert set(by_t) == want_times, (epic, sorted(set(by_t) ^ want_times)[:5])
        for bar in truth:
            row = by_t[datetime.fromisoformat(bar["t"])]
            assert row["final"], (epic, bar["t"])
            for side in ("bid", "ask"):
                for k in "ohlc":
                    assert row[f"{side}_{k}"] == Decimal(bar[side][k]), (epic, bar["t"], side, k)
            checked += 1
    return checked


def stream_scenario(
    engine: Engine, real_seconds: float, rate: float, extra: int = 0, per_connection: int = 5
) -> None:
    upgrade(engine)
    config = SimulatorConfig(world=WorldConfig(seed=42, start=STREAM_WORLD_START)).with_overrides(
        stream_tick_seconds=0.05, rate_limit_per_second=0, faults=FAULTS, extra_markets=extra
    )
    sim = SimulatorServer(config, clock=Clock(TEST_NOW, rate=rate)).start()
    epics = sorted(INSTRUMENTS) + [synthetic_epic(i) for i in range(1, extra + 1)]
    try:
        client = CapitalClient(sim.url, API_KEY, IDENTIFIER, PASSWORD, rate_limit=50)
        options = StreamOptions(
            epics=epics, max_epics=per_connection, ping_s=2, quote_stale_s=2, ohlc_stale_s=4,
            reconcile_s=1, grace_s=120, backoff_base_s=0.1, backoff_cap_s=1,
        )  # fmt: skip
        stream = BarStream(client, engine, options)
        start = align_down(client.server_time(), "MINUTE") + timedelta(minutes=1)

        def expire_later() -> None:
            time.sleep(real_seconds / 2)
            httpx.post(sim.url + "/_sim/sessions/expire")

        threading.Thread(target=expire_later, daemon=True).start()
        asyncio.run(stream.run(duration=real_seconds, backfill_from=start))
        end = align_down(client.server_time(), "MINUTE")
        stream.reconcile(until=end)
        status = stream.status
        assert status.reconnects >= 1
        # The expired session was replaced: by the stream on its error frame, or first by a REST
        # call of the backfill (the client logs in again on a 401); either way, a second login.
        assert httpx.get(sim.url + "/_sim/stats").json()["logins"] >= 2
        assert status.rejected >= 1  # the malformed frames, counted and logged
        checked = assert_bars_equal_truth(sim, engine, epics, Window(start, end))
        minutes = (end - start) / timedelta(minutes=1)
        assert checked >= minutes * len(epics) * 0.6  # most markets are open at this hour
        assert status.connections == 0 and len(stream.chunks()) == -(-len(epics) // per_connection)
        client.close()
    finally:
        sim.stop()


def test_stream_bars_equal_truth_short(ledger_engine: Engine, tmp_path: Path) -> None:
    stream_scenario(ledger_engine, real_seconds=12, rate=60)


@pytest.mark.slow
def test_stream_bars_equal_truth_two_hours(ledger_engine: Engine, tmp_path: Path) -> None:
    """Two simulated hours of 40 epics (12 catalog markets and 28 synthetic ones)."""
    stream_scenario(ledger_engine, real_seconds=125, rate=60, extra=28, per_connection=40)
