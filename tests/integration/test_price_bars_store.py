"""The bar store on both backends: keys, finality, REST superseding the stream, revisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from ledger_etl.intervals import Window
from ledger_etl.ledger.db import upgrade
from ledger_etl.market.bars import (
    BarError,
    bar_gaps,
    from_event,
    from_rest,
    read_bars,
    record_coverage,
    store_updates,
)

T = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
SEEN = datetime(2026, 1, 15, 12, 5, tzinfo=UTC)
D = Decimal


def event(side: str, o: str, h: str, l: str, c: str, final: bool, t: datetime = T):  # noqa: E741
    payload = {
        "epic": "GOLD",
        "resolution": "MINUTE",
        "type": "classic",
        "priceType": side,
        "t": int(t.timestamp()) * 1000,
        "o": D(o),
        "h": D(h),
        "l": D(l),
        "c": D(c),
    }
    return from_event(payload, final)


def rest(o: str, t: datetime = T):
    row = {
        "snapshotTimeUTC": t.strftime("%Y-%m-%dT%H:%M:%S"),
        "openPrice": {"bid": D(o), "ask": D(o) + 1},
        "highPrice": {"bid": D(o), "ask": D(o) + 1},
        "lowPrice": {"bid": D(o), "ask": D(o) + 1},
        "closePrice": {"bid": D(o), "ask": D(o) + 1},
        "lastTradedVolume": 17,
    }
    return from_rest("GOLD", "MINUTE", row)


@pytest.fixture
def engine(ledger_engine: Engine) -> Engine:
    upgrade(ledger_engine)
    return ledger_engine


def test_stream_then_rest_supersedes_and_counts_revisions(engine: Engine) -> None:
    assert store_updates(engine, [event("bid", "10.5", "11", "10", "10.75", False)], SEEN) == 1
    # a duplicate changes nothing
    assert store_updates(engine, [event("bid", "10.5", "11", "10", "10.75", False)], SEEN) == 0
    (row,) = read_bars(engine, "GOLD", "MINUTE", Window(T, T + timedelta(minutes=1)))
    assert not row["final"] and row["ask_o"] is None and row["revision"] == 1
    assert row["bid_c"] == D("10.75")
    store_updates(engine, [rest("10.25")], SEEN + timedelta(minutes=1))
    (row,) = read_bars(engine, "GOLD", "MINUTE", Window(T, T + timedelta(minutes=1)))
    assert row["source"] == "rest" and row["final"] and row["revision"] == 2
    assert row["bid_o"] == D("10.25") and row["ask_o"] == D("11.25") and row["volume"] == 17
    assert row["first_seen"] == SEEN and row["last_seen"] == SEEN + timedelta(minutes=1)
    # a late stream value never overwrites REST
    store_updates(engine, [event("bid", "99", "99", "99", "99", True)], SEEN)
    (row,) = read_bars(engine, "GOLD", "MINUTE", Window(T, T + timedelta(minutes=1)))
    assert row["bid_o"] == D("10.25") and row["revision"] == 2


def test_gaps_are_what_is_neither_final_nor_covered(engine: Engine) -> None:
    wanted = Window(T, T + timedelta(minutes=10))
    assert bar_gaps(engine, "GOLD", "MINUTE", wanted) == [wanted]
    store_updates(engine, [rest("10", T + timedelta(minutes=2))], SEEN)
    provisional = event("bid", "10", "10", "10", "10", False, T + timedelta(minutes=3))
    store_updates(engine, [provisional], SEEN)
    record_coverage(
        engine, "GOLD", "MINUTE", Window(T + timedelta(minutes=6), T + timedelta(minutes=8)), SEEN
    )
    gaps = bar_gaps(engine, "GOLD", "MINUTE", wanted)
    assert gaps == [
        Window(T, T + timedelta(minutes=2)),
        Window(T + timedelta(minutes=3), T + timedelta(minutes=6)),
        Window(T + timedelta(minutes=8), T + timedelta(minutes=10)),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"priceType": "mid"}, "price type"),
        ({"t": 1.5}, "whole epoch"),
        ({"h": D("1")}, "low..high"),
        ({"o": "10"}, "not a number"),
        ({"o": D("NaN")}, "finite"),
        ({"resolution": "SECOND"}, "resolution"),
    ],
)
def test_bad_events_are_refused_with_a_reason(change: dict, message: str) -> None:
    payload = {
        "epic": "GOLD",
        "resolution": "MINUTE",
        "priceType": "bid",
        "t": 1768478400000,
        "o": D("10"),
        "h": D("11"),
        "l": D("9"),
        "c": D("10"),
    } | change
    with pytest.raises(BarError, match=message):
        from_event(payload, True)
