"""Policy breaches and drift give exactly the expected alerts, once each; bad policy files get
a clear error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ledger_etl.ledger.db import upgrade
from ledger_etl.trading import store
from ledger_etl.trading.alerts import read_alerts
from ledger_etl.trading.governance import govern
from ledger_etl.trading.instruments import InstrumentAttributes
from ledger_etl.trading.policy import InvalidPolicyError, load_policy, parse_policy
from ledger_etl.trading.snapshots import DealState
from ledger_etl.trading.tracker import LifecycleTracker

D = Decimal
T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
POLICY = """
max_notional:
  account: 100000
  per_epic: {BTCUSD: 500}
  per_asset_class: {COMMODITIES: 1000000}
max_leverage: 50
require_stop: true
require_guaranteed_stop: [CRYPTOCURRENCIES]
max_stop_distance_pct: 5
drift: true
"""


def _state(deal_id, epic, level, stop=None, gsl=False, size="1"):
    values = {
        "epic": epic,
        "direction": "BUY",
        "size": D(size),
        "level": D(level),
        "stop_level": None if stop is None else D(stop),
        "stop_distance": None,
        "profit_level": None,
        "profit_distance": None,
        "guaranteed_stop": gsl,
        "trailing_stop": False,
        "deal_reference": None,
        "working_order_id": None,
        "created_at": T0 - timedelta(days=1),
    }
    return DealState(deal_id, "position", values, "{}")


def _poll(engine, at, states):
    with engine.begin() as conn:
        store.write_snapshot(conn, "position", "A1", at, states)
        tracker = LifecycleTracker(conn, "A1")
        tracker.observe("position", states, at)
        tracker.flush(at)
        store.record_poll(
            conn,
            account_id="A1",
            observed_at=at,
            status="complete",
            currency="USD",
            positions_seen=len(states),
            orders_seen=0,
            rows_written=0,
            figures={"balance": "10000"},
            problems=[],
            error=None,
        )


@pytest.fixture
def seeded(ledger_engine):
    upgrade(ledger_engine)
    with ledger_engine.begin() as conn:
        store.upsert_instruments(
            conn,
            T0,
            [
                InstrumentAttributes(
                    "GOLD", "Gold", "GOLD", "COMMODITIES", "USD", D(1), D(5), "PERCENTAGE", True
                ),
                InstrumentAttributes(
                    "BTCUSD",
                    "BTC",
                    "BTC",
                    "CRYPTOCURRENCIES",
                    "USD",
                    D(1),
                    D(50),
                    "PERCENTAGE",
                    False,
                ),
            ],
        )
        store.write_quotes(
            conn,
            T0,
            {"GOLD": (D("2000"), D("2001"), None, "t"), "BTCUSD": (D("600"), D("610"), None, "t")},
        )
    return ledger_engine


def test_breaches_and_drift_alert_once_each(seeded, tmp_path):
    policy = parse_policy(__import__("yaml").safe_load(POLICY))
    _poll(
        seeded,
        T0,
        [
            _state("G1", "GOLD", "2000", stop="1950"),
            _state("G2", "GOLD", "2000"),
            _state("B1", "BTCUSD", "600", stop="590"),
        ],
    )
    first = govern(seeded, "A1", policy, export_dir=tmp_path)
    rules = sorted((a["rule"], a["deal_id"]) for a in first.new_alerts)
    assert rules == [
        ("max_notional.per_epic", None),
        ("require_guaranteed_stop", "B1"),
        ("require_stop", "G2"),
    ]
    assert first.exposure.breaches and read_alerts(tmp_path) == first.new_alerts
    # The next poll, nothing changed: the same breaches, no new alert.
    _poll(
        seeded,
        T0 + timedelta(minutes=1),
        [
            _state("G1", "GOLD", "2000", stop="1950"),
            _state("G2", "GOLD", "2000"),
            _state("B1", "BTCUSD", "600", stop="590"),
        ],
    )
    again = govern(seeded, "A1", policy, export_dir=tmp_path)
    assert len(again.breaches) == 3 and again.new_alerts == []
    # G1's stop is widened past policy and B1's stop removed: drift and distance, once.
    for minute in (2, 3):
        _poll(
            seeded,
            T0 + timedelta(minutes=minute),
            [
                _state("G1", "GOLD", "2000", stop="1850"),
                _state("G2", "GOLD", "2000"),
                _state("B1", "BTCUSD", "600"),
            ],
        )
        moved = govern(seeded, "A1", policy, export_dir=tmp_path)
        if minute == 2:
            got = sorted((a["rule"], a["deal_id"], a["old"], a["new"]) for a in moved.new_alerts)
            assert got == [
                ("drift.stop_level", "B1", "590", None),
                ("drift.stop_level", "G1", "1950", "1850"),
                ("max_stop_distance_pct", "G1", None, "1850"),
                ("require_stop", "B1", None, None),
            ]
        else:
            assert moved.new_alerts == []
    assert len(read_alerts(tmp_path)) == 7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("   \n", "is empty"),
        ("max_notionl: {account: 5}", "unknown rule 'max_notionl'"),
        ("require_stop: yes-please", "must be true or false"),
        ("max_leverage: lots", "must be a number"),
        ("max_notional: {planet: 5}", "unknown scope 'planet'"),
        ("require_guaranteed_stop: CRYPTOCURRENCIES", "must list asset classes"),
        ("[1, 2", "cannot be parsed"),
    ],
)
def test_bad_policy_files_get_a_clear_error(tmp_path, text, message):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(InvalidPolicyError, match=message):
        load_policy(path)


def test_json_policy_numbers_are_exact(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text('{"max_stop_distance_pct": 0.1, "max_notional": {"account": 1e3}}')
    policy = load_policy(path)
    assert policy.max_stop_distance_pct == D("0.1") and policy.max_notional_account == D("1E+3")
