"""`ledger-etl prices backfill|bars` and `ledger-etl stream` against a real simulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from ledger_etl.cli import main
from ledger_etl.intervals import Window
from ledger_etl.ledger.db import make_engine
from ledger_etl.market.backfill import align_down
from ledger_etl.market.quotes import QuoteFiles, verify
from ledger_etl.simulator import Clock, SimulatorConfig, SimulatorServer, WorldConfig
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD, STREAM_WORLD_START, TEST_NOW
from tests.integration.test_stream_exact import assert_bars_equal_truth


def _env(server: SimulatorServer, tmp_path: Path) -> dict[str, str]:
    return {
        "CAPITAL_API_URL": server.url, "CAPITAL_API_KEY": API_KEY,
        "CAPITAL_IDENTIFIER": IDENTIFIER, "CAPITAL_PASSWORD": PASSWORD,
        "CAPITAL_RATE_LIMIT": "200",
        "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite'}",
    }  # fmt: skip


def test_backfill_then_bars_equal_truth(shared_sim: SimulatorServer, tmp_path: Path) -> None:
    runner, env = CliRunner(), _env(shared_sim, tmp_path)
    # GOLD closes 22:00-23:05 every day: the window holds a closed hour, which is no gap.
    args = ["--epic", "GOLD", "--resolution", "MINUTE",
            "--from", "2026-01-14T20:00:00Z", "--to", "2026-01-15T10:00:00Z"]  # fmt: skip
    first = runner.invoke(main, ["prices", "backfill", *args], env=env)
    assert first.exit_code == 0, first.output
    assert "1 requests" in first.output and "775 bars" in first.output
    again = runner.invoke(main, ["prices", "backfill", *args], env=env)
    assert "0 requests, 0 bars" in again.output  # idempotent: nothing left to ask for
    shown = runner.invoke(main, ["prices", "bars", *args, "--format", "json"], env=env)
    assert shown.exit_code == 0, shown.output
    bars = json.loads(shown.output)
    truth = httpx.get(
        shared_sim.url + "/_sim/truth/bars",
        params={"epic": "GOLD", "from": "2026-01-14T20:00:00Z", "to": "2026-01-15T10:00:00Z"},
    ).json()
    assert [b["t"] for b in bars] == [b["t"] for b in truth["bars"]]
    for got, want in zip(bars, truth["bars"], strict=True):
        assert set(got) >= {"epic", "resolution", "t", "bid", "ask", "volume", "source"}
        assert got["source"] == "rest" and got["volume"] == want["volume"]
        for side in ("bid", "ask"):
            assert {k: Decimal(v) for k, v in got[side].items()} == {
                k: Decimal(v) for k, v in want[side].items()
            }
    out = tmp_path / "bars.parquet"
    written = runner.invoke(main, ["prices", "bars", *args, "--format", "parquet", "--out",
                                   str(out)], env=env)  # fmt: skip
    assert written.exit_code == 0 and pq.read_table(out).num_rows == len(bars)
    csv_text = runner.invoke(main, ["prices", "bars", *args, "--format", "csv"], env=env).output
    assert len(csv_text.splitlines()) == len(bars) + 1
    # heikin-ashi, derived from the stored classic bars, equals the simulator's own
    ha_args = ["prices", "bars", *args, "--format", "json", "--bar-type", "heikin-ashi"]
    derived = json.loads(runner.invoke(main, ha_args, env=env).output)
    truth_ha = httpx.get(shared_sim.url + "/_sim/truth/bars", params={
        "epic": "GOLD", "type": "heikin-ashi", "from": "2026-01-14T20:01:00Z",
        "to": "2026-01-15T10:00:00Z"}).json()["bars"]  # fmt: skip
    by_t = {b["t"]: b for b in derived}
    assert len(truth_ha) == len(derived) - 1  # the first derived bar has no earlier bar stored
    for want in truth_ha:
        for side in ("bid", "ask"):
            got = {k: Decimal(v) for k, v in by_t[want["t"]][side].items()}
            assert got == {k: Decimal(v) for k, v in want[side].items()}, (want["t"], side)


def test_bad_input_is_a_clear_error(shared_sim: SimulatorServer, tmp_path: Path) -> None:
    runner, env = CliRunner(), _env(shared_sim, tmp_path)
    base = ["--from", "2026-01-14T20:00:00Z", "--to", "2026-01-14T21:00:00Z"]
    unknown = runner.invoke(main, ["prices", "backfill", "--epic", "NOPE", *base], env=env)
    assert unknown.exit_code == 3 and "error.not-found.epic" in unknown.output
    bad = runner.invoke(
        main, ["prices", "backfill", "--epic", "GOLD", "--resolution", "SECOND", *base], env=env
    )
    assert bad.exit_code == 2 and "unknown resolution" in bad.output
    backwards = ["--from", "2026-01-14T21:00:00Z", "--to", "2026-01-14T20:00:00Z"]
    inverted = runner.invoke(main, ["prices", "bars", "--epic", "GOLD", *backwards], env=env)
    assert inverted.exit_code == 2


@pytest.fixture
def fast_sim() -> Iterator[SimulatorServer]:
    config = SimulatorConfig(world=WorldConfig(seed=42, start=STREAM_WORLD_START)).with_overrides(
        stream_tick_seconds=0.05, rate_limit_per_second=0
    )
    server = SimulatorServer(config, clock=Clock(TEST_NOW, rate=60)).start()
    yield server
    server.stop()


def _stream(env: dict[str, str], tmp_path: Path, start: str, *extra: str) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "ledger_etl.cli",
        "stream",
        "--epics",
        "BTCUSD,EURUSD",
        "--quotes-dir",
        str(tmp_path / "quotes"),
        "--rotate-seconds",
        "0.5",
        "--health-file",
        str(tmp_path / "health.json"),
        "--backfill-from",
        start,
        *extra,
    ]
    return subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip


def test_stream_sigterm_flushes_and_sigkill_loses_nothing(
    fast_sim: SimulatorServer, tmp_path: Path
) -> None:
    env = _env(fast_sim, tmp_path)
    now = fast_sim.simulator.clock.now()
    start = (align_down(now, "MINUTE") + timedelta(minutes=1)).isoformat()
    killed = _stream(env, tmp_path, start)
    _wait_for_messages(tmp_path / "health.json", 50)
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)
    time.sleep(3)  # bars close while nothing streams
    (tmp_path / "health.json").unlink()
    graceful = _stream(env, tmp_path, start)
    _wait_for_messages(tmp_path / "health.json", 100)
    # Simulated time runs 60 times as fast: freeze it, so the bars the test expects are those
    # that had closed when the stream was told to stop (its last pass backfills them).
    fast_sim.simulator.clock.freeze()
    stopped_at = fast_sim.simulator.clock.now()
    graceful.send_signal(signal.SIGTERM)
    _, err = graceful.communicate(timeout=30)
    assert graceful.returncode == 0, err.decode()[-2000:]
    assert verify(tmp_path / "quotes") == []
    assert not list((tmp_path / "quotes").rglob("*.tmp"))
    manifest = QuoteFiles(tmp_path / "quotes").manifest()
    assert {f["epic"] for f in manifest["files"]} == {"BTCUSD", "EURUSD"}
    health = json.loads((tmp_path / "health.json").read_text())
    assert health["messages"] > 0
    engine = make_engine(env["LEDGER_DATABASE_URL"])
    end = align_down(stopped_at, "MINUTE") - timedelta(minutes=1)
    window = Window(datetime.fromisoformat(start).astimezone(UTC), end)
    # Every minute of the window, both markets (open all this Thursday): how many minutes that
    # is depends on how fast this machine ran the stream, so it is counted, not assumed.
    minutes = int((window.end - window.start).total_seconds() // 60)
    assert minutes >= 3
    assert assert_bars_equal_truth(fast_sim, engine, ["BTCUSD", "EURUSD"], window) == 2 * minutes


def _wait_for_messages(health: Path, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads(health.read_text())["messages"] >= count:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"the stream did not reach {count} messages")
