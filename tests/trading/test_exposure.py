"""Exposure from stored snapshots with fixed prices, against figures computed by hand.

Account in USD. GOLD BUY in USD; DE40 SELL in EUR (converted at the EURUSD mid); a JPY
instrument BUY (converted at 1/USDJPY mid, 20 significant digits), without a stop.

GOLD  BUY 2 @ 2300.50, bid 2350.20: notional 2 x 2350.20 = 4700.40; upl (2350.20 - 2300.50) x 2
      = 99.40; margin 4700.40 x 5 / 100 = 235.02; stop 2280.00: risk (2300.50 - 2280.00) x 2 = 41.
DE40  SELL 0.5 @ 18010.0, offer 18001.0 (EUR): notional 9000.50 EUR; upl -(18001.0 - 18010.0) x 0.5
      = 4.50 EUR; margin 450.025 EUR; stop distance 50 -> stop 18060.0: risk 25.0 EUR.
      EURUSD mid (1.08490 + 1.08510) / 2 = 1.08500: 9765.5425, 4.8825, 488.277125, 27.125 USD.
JP    BUY 1 @ 39000, bid 39100 (JPY): notional 39100, upl 100, margin 1955 JPY, no stop.
      USDJPY mid 150.005: rate 1/150.005 = 0.0066664444518516049465.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ledger_etl.ledger.db import upgrade
from ledger_etl.trading import store
from ledger_etl.trading.instruments import InstrumentAttributes
from ledger_etl.trading.query import exposure_at, exposure_json
from ledger_etl.trading.snapshots import DealState
from ledger_etl.trading.store import NoSnapshotError

D = Decimal
T0 = datetime(2026, 3, 2, 14, 5, tzinfo=UTC)


def _instrument(epic, kind, ccy, margin="5", unit="PERCENTAGE"):
    return InstrumentAttributes(epic, epic, epic, kind, ccy, D(1), D(margin), unit, True)


def _position(deal_id, epic, direction, size, level, stop=None, stop_distance=None, upl=None):
    values = {
        "epic": epic,
        "direction": direction,
        "size": D(size),
        "level": D(level),
        "stop_level": None if stop is None else D(stop),
        "stop_distance": None if stop_distance is None else D(stop_distance),
        "profit_level": None,
        "profit_distance": None,
        "guaranteed_stop": False,
        "trailing_stop": False,
        "deal_reference": None,
        "working_order_id": None,
        "created_at": T0 - timedelta(hours=1),
    }
    return DealState(deal_id, "position", values, "{}", None if upl is None else D(upl))


def _store(engine, positions, figures=None, at=T0):
    upgrade(engine)
    with engine.begin() as conn:
        store.upsert_instruments(
            conn,
            at,
            [
                _instrument("GOLD", "COMMODITIES", "USD"),
                _instrument("DE40", "INDICES", "EUR"),
                _instrument("JP", "INDICES", "JPY"),
                _instrument("EURUSD", "CURRENCIES", "USD"),
                _instrument("USDJPY", "CURRENCIES", "JPY"),
                _instrument("ODD", "INDICES", "USD", unit="POINTS"),
                _instrument("NOCCY", "INDICES", None),
            ],
        )
        store.write_quotes(
            conn,
            at,
            {
                "GOLD": (D("2350.20"), D("2350.50"), "TRADEABLE", "test"),
                "DE40": (D("18000.0"), D("18001.0"), "TRADEABLE", "test"),
                "JP": (D("39100"), D("39110"), "TRADEABLE", "test"),
                "EURUSD": (D("1.08490"), D("1.08510"), "TRADEABLE", "test"),
                "USDJPY": (D("150.000"), D("150.010"), "TRADEABLE", "test"),
                "ODD": (D("10"), D("11"), "TRADEABLE", "test"),
                "NOCCY": (D("10"), D("11"), "TRADEABLE", "test"),
            },
        )
        store.write_snapshot(conn, "position", "A1", at, positions)
        store.record_poll(
            conn,
            account_id="A1",
            observed_at=at,
            status="complete",
            currency="USD",
            positions_seen=len(positions),
            orders_seen=0,
            rows_written=0,
            figures=figures or {},
            problems=[],
            error=None,
        )


def test_exposure_equals_hand_computed_figures(ledger_engine):
    _store(
        ledger_engine,
        [
            _position("G1", "GOLD", "BUY", "2", "2300.50", stop="2280.00", upl="99.40"),
            _position("D1", "DE40", "SELL", "0.5", "18010.0", stop_distance="50", upl="4.61"),
            _position("J1", "JP", "BUY", "1", "39000"),
        ],
        figures={
            "upl": {"G1": "99.40", "D1": "4.61", "J1": None},
            "profit_loss": "104.95",
            "balance": "10000",
            "available": "9000",
        },
    )
    report = exposure_json(exposure_at(ledger_engine, "A1", T0 + timedelta(minutes=3)))
    assert (report["account_id"], report["currency"], report["as_of"]) == (
        "A1",
        "USD",
        T0.isoformat(),
    )
    by_id = {p["deal_id"]: p for p in report["positions"]}
    assert by_id["G1"] == by_id["G1"] | {
        "instrument_id": "CAPITAL:GOLD",
        "direction": "BUY",
        "size": "2",
        "open_level": "2300.5",
        "price": "2350.2",
        "fx_rate": "1",
        "notional": "4700.4",
        "margin": "235.02",
        "upl": "99.4",
        "risk_to_stop": "41",
    }
    assert by_id["D1"] == by_id["D1"] | {
        "instrument_id": "CAPITAL:DE40",
        "direction": "SELL",
        "price": "18001",
        "fx_rate": "1.085",
        "notional": "9765.5425",
        "margin": "488.277125",
        "upl": "4.8825",
        "risk_to_stop": "27.125",
    }
    assert by_id["D1"]["fx_source"].startswith("EURUSD mid at 2026-03-02T14:05:00")
    assert by_id["J1"] == by_id["J1"] | {
        "fx_rate": "0.0066664444518516049465",
        "notional": "260.65797806739775340815",
        "margin": "13.0328989033698876704075",
        "upl": "0.66664444518516049465",
        "risk_to_stop": None,
    }
    assert by_id["J1"]["fx_source"].startswith("1/USDJPY mid")
    assert report["totals"] == {
        "notional": "14726.60047806739775340815",
        "margin": "736.3300239033698876704075",
        "upl": "104.94914444518516049465",
    }
    assert report["by_asset_class"]["COMMODITIES"] == {
        "notional": "4700.4",
        "margin": "235.02",
        "upl": "99.4",
        "positions": 1,
    }
    assert report["by_asset_class"]["INDICES"]["positions"] == 2
    assert set(report) >= {
        "account_id",
        "currency",
        "as_of",
        "positions",
        "totals",
        "by_asset_class",
        "breaches",
    }
    recon = report["reconciliation"]
    # D1: broker 4.61 vs ours 4.8825: within half the spread (0.5 x 0.5 x 1.085) + 0.01.
    assert recon["positions_checked"] == 2 and recon["mismatches"] == []
    assert recon["account_within_tolerance"] is True


def test_unknown_instrument_and_odd_margin_unit_are_flagged(ledger_engine):
    _store(
        ledger_engine,
        [
            _position("U1", "NOT_AN_EPIC", "BUY", "1", "10"),
            _position("O1", "ODD", "BUY", "1", "10", upl="900"),
            _position("N1", "NOCCY", "BUY", "1", "10"),
        ],
        figures={"upl": {"O1": "900"}},
    )
    report = exposure_json(exposure_at(ledger_engine, "A1"))
    by_id = {p["deal_id"]: p for p in report["positions"]}
    assert by_id["U1"]["notional"] is None and by_id["U1"]["flags"][0].startswith("unknown_inst")
    assert by_id["O1"]["margin"] is None and by_id["O1"]["notional"] == "10"
    assert by_id["O1"]["flags"][0].startswith("margin_unknown")
    assert by_id["N1"]["notional"] is None
    assert by_id["N1"]["flags"][0].startswith("incomplete_instrument")
    assert report["totals"]["notional"] == "10"
    assert report["reconciliation"]["mismatches"][0]["deal_id"] == "O1"


def test_no_snapshot_before_the_instant_is_a_clear_error(ledger_engine):
    _store(ledger_engine, [])
    with pytest.raises(NoSnapshotError, match="no complete snapshot at or before"):
        exposure_at(ledger_engine, "A1", T0 - timedelta(seconds=1))
