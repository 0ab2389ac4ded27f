"""Larger bars derived from stored MINUTE bars, compared with the broker's (the simulator's over
real HTTP) on both backends: equal wherever both exist, a tampered bar is caught, a bar with a
gap is never derived."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, update

from ledger_etl.capital.client import CapitalClient
from ledger_etl.cli import main
from ledger_etl.intervals import Window
from ledger_etl.ledger.db import make_engine, upgrade
from ledger_etl.ledger.schema import price_bars
from ledger_etl.market.backfill import backfill
from ledger_etl.market.bars import FIELDS, RESOLUTIONS, read_bars
from ledger_etl.market.derive import DeriveError, compare_derived, derive_bars
from ledger_etl.simulator import SimulatorServer
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD, TEST_NOW
from tests.integration.test_market_cli import _env

# GOLD pauses 22:00-23:05 every day, so every DAY and some HOUR bars hold a closed span.
WINDOW = Window(datetime(2026, 1, 13, tzinfo=UTC), datetime(2026, 1, 15, tzinfo=UTC))
TARGETS = ("MINUTE_5", "MINUTE_15", "MINUTE_30", "HOUR", "HOUR_4", "DAY")


@pytest.fixture
def client(shared_sim: SimulatorServer) -> Iterator[CapitalClient]:
    with CapitalClient(shared_sim.url, API_KEY, IDENTIFIER, PASSWORD, rate_limit=200.0) as c:
        c.login()
        yield c


def _fill(client: CapitalClient, engine: Engine, resolutions: tuple[str, ...], window: Window):
    for resolution in resolutions:
        backfill(client, engine, "GOLD", resolution, window, now=TEST_NOW)


@pytest.mark.slow
def test_derived_bars_equal_the_brokers_and_a_changed_bar_is_caught(
    client: CapitalClient, ledger_engine: Engine
) -> None:
    upgrade(ledger_engine)
    _fill(client, ledger_engine, ("MINUTE", *TARGETS), WINDOW)
    for target in TARGETS:
        result = compare_derived(ledger_engine, "GOLD", target, WINDOW)
        expected = len(read_bars(ledger_engine, "GOLD", target, WINDOW))
        assert result.compared == expected > 0, target
        assert result.mismatches == [] and result.broker_only == 0, target
    hours = derive_bars(ledger_engine, "GOLD", "HOUR", WINDOW)
    # the 22:00 hour is closed, the 23:00 one open from 23:05: 23 bars a day, none partial
    assert len(hours) == 46 and all(b["source"] == "derived" for b in hours)
    assert all(isinstance(b[f], Decimal) for b in hours for f in FIELDS)

    # One MINUTE bar of 2026-01-14 10:17 with a bid high far above the rest: every derived
    # bar holding it now differs from the broker's, in that field only.
    odd = datetime(2026, 1, 14, 10, 17, tzinfo=UTC)
    with ledger_engine.begin() as conn:
        conn.execute(
            update(price_bars)
            .where(price_bars.c.epic == "GOLD", price_bars.c.resolution == "MINUTE",
                   price_bars.c.t == odd)
            .values(bid_h=price_bars.c.bid_h * 2)
        )  # fmt: skip
    (changed,) = read_bars(ledger_engine, "GOLD", "MINUTE", Window(odd, odd + timedelta(minutes=1)))
    for target in TARGETS:
        result = compare_derived(ledger_engine, "GOLD", target, WINDOW)
        assert [m.field for m in result.mismatches] == ["bid_h"], target
        (mismatch,) = result.mismatches
        assert mismatch.t <= odd < mismatch.t + timedelta(seconds=RESOLUTIONS[target])
        assert mismatch.derived == changed["bid_h"] > mismatch.broker


def test_a_bar_with_a_gap_is_not_derived(client: CapitalClient, ledger_engine: Engine) -> None:
    upgrade(ledger_engine)
    hour = Window(datetime(2026, 1, 14, 10, tzinfo=UTC), datetime(2026, 1, 14, 12, tzinfo=UTC))
    # MINUTE bars of 10:00-10:30 and 11:00-12:00 only: 10:00 has a gap of half an hour
    _fill(
        client, ledger_engine, ("MINUTE",), Window(hour.start, hour.start + timedelta(minutes=30))
    )
    _fill(client, ledger_engine, ("MINUTE",), Window(hour.start + timedelta(hours=1), hour.end))
    _fill(client, ledger_engine, ("HOUR",), hour)
    derived = derive_bars(ledger_engine, "GOLD", "HOUR", hour)
    assert [b["t"] for b in derived] == [hour.start + timedelta(hours=1)]
    result = compare_derived(ledger_engine, "GOLD", "HOUR", hour)
    assert (result.compared, result.broker_only, result.mismatches) == (1, 1, [])
    with pytest.raises(DeriveError):
        derive_bars(ledger_engine, "GOLD", "MINUTE", hour, source="HOUR")
    with pytest.raises(DeriveError):
        derive_bars(ledger_engine, "GOLD", "MINUTE_15", hour, source="MINUTE_30")


@pytest.mark.slow
def test_cli_derive_and_check(shared_sim: SimulatorServer, client: CapitalClient,
                              tmp_path: Path) -> None:  # fmt: skip
    runner, env = CliRunner(), _env(shared_sim, tmp_path)
    engine = make_engine(env["LEDGER_DATABASE_URL"])
    upgrade(engine)
    day = Window(datetime(2026, 1, 14, tzinfo=UTC), datetime(2026, 1, 15, tzinfo=UTC))
    _fill(client, engine, ("MINUTE", "HOUR", "DAY"), day)
    span = ["--epic", "GOLD", "--from", "2026-01-14T00:00:00Z", "--to", "2026-01-15T00:00:00Z"]
    shown = runner.invoke(main, ["prices", "derive", *span, "--resolution", "HOUR",
                                 "--format", "json"], env=env)  # fmt: skip
    assert shown.exit_code == 0, shown.output
    derived = json.loads(shown.output)
    broker = json.loads(runner.invoke(main, ["prices", "bars", *span, "--resolution", "HOUR",
                                             "--format", "json"], env=env).output)  # fmt: skip
    assert [d["t"] for d in derived] == [b["t"] for b in broker] and len(derived) == 23
    assert [(d["bid"], d["ask"]) for d in derived] == [(b["bid"], b["ask"]) for b in broker]
    assert {d["source"] for d in derived} == {"derived"}
    check = ["prices", "check-derived", *span, "--resolutions", "HOUR,DAY"]
    passed = runner.invoke(main, check, env=env)
    assert passed.exit_code == 0, passed.output
    assert "GOLD HOUR from MINUTE: 23 compared, 0 mismatched" in passed.output
    with engine.begin() as conn:
        conn.execute(
            update(price_bars)
            .where(price_bars.c.resolution == "HOUR",
                   price_bars.c.t == datetime(2026, 1, 14, 3, tzinfo=UTC))
            .values(ask_c=price_bars.c.ask_c + 1)
        )  # fmt: skip
    failed = runner.invoke(main, [*check, "--format", "json"], env=env)
    assert failed.exit_code == 1, failed.output
    report = json.loads(failed.output)
    (mismatch,) = report["HOUR"]["mismatches"]
    assert mismatch["t"] == "2026-01-14T03:00:00+00:00" and mismatch["field"] == "ask_c"
    assert Decimal(mismatch["broker"]) - Decimal(mismatch["derived"]) == 1
    assert report["DAY"]["mismatches"] == [] and report["DAY"]["compared"] == 1
    bad = runner.invoke(main, ["prices", "derive", *span, "--resolution", "MINUTE"], env=env)
    assert bad.exit_code == 2 and "cannot be derived" in bad.output
