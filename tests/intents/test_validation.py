"""Every validation rule has a failing example over HTTP, with its expected 422 detail; risk
caps reject before anything is sent and name their rule."""

from __future__ import annotations

import json
from decimal import Decimal

from tests.intents.conftest import intent, orders_posted, wait_final

# (fields, field, rule, bound): bound is the exact text, "<" (the value is below the bound),
# ">" (above it) or None (no bound). The simulator's GOLD trades 0.1 to 5000 in steps of 0.1
# near 2,400 USD; US shares are closed at the simulated noon UTC.
MARKET_RULES = [
    ({"size": "0.05"}, "size", "min_size", "0.1"),
    ({"size": 6000}, "size", "max_size", "5000"),
    ({"size": "1.05"}, "size", "size_increment", "0.1"),
    ({"stop_distance": "0.1"}, "stop_distance", "min_stop_distance", ">"),
    ({"stop_distance": 2000}, "stop_distance", "max_stop_distance", "<"),
    ({"profit_distance": "0.1"}, "profit_distance", "min_profit_distance", ">"),
    ({"profit_distance": 2000}, "profit_distance", "max_profit_distance", "<"),
    ({"guaranteed_stop": True, "stop_distance": 5}, "stop_distance",
     "min_guaranteed_stop_distance", ">"),
    ({"epic": "BTCUSD", "guaranteed_stop": True, "stop_distance": 5000}, "guaranteed_stop",
     "guaranteed_stop_allowed", None),
    ({"epic": "SILVER", "trailing_stop": True, "stop_distance": 1}, "trailing_stop",
     "trailing_stop_allowed", None),
    ({"epic": "AAPL"}, "symbol", "market_open", None),
    ({"order_type": "limit", "level": 9000}, "level", "order_level", "<"),
    ({"order_type": "stop", "level": 100}, "level", "order_level", ">"),
    ({"order_type": "limit", "level": 100, "good_till": "2020-01-01T00:00:00Z"}, "good_till",
     "good_till_future", None),
    ({"stop_level": 9000}, "stop_level", "stop_side", None),
    ({"profit_level": 1}, "profit_level", "profit_side", None),
    ({"epic": "NOPE"}, "epic", "known_market", None),
]  # fmt: skip

SHAPE_RULES = [
    ({"symbol": "FX:EURUSD"}, "give exactly one of symbol and epic"),
    ({"risk_amount": 10}, "give exactly one of size and risk_amount"),
    ({"size": None, "risk_amount": 10}, "risk_amount needs stop_distance or stop_level"),
    ({"order_type": "limit"}, "a limit order needs level"),
    ({"level": 2000}, "a market order takes no level"),
    ({"good_till": "2030-01-01T00:00:00Z"}, "good_till applies to limit and stop orders only"),
    ({"trailing_stop": True}, "trailing_stop needs stop_distance"),
    ({"guaranteed_stop": True, "trailing_stop": True, "stop_distance": 30},
     "guaranteed_stop and trailing_stop cannot both be set"),
    ({"guaranteed_stop": True}, "guaranteed_stop needs a stop"),
    ({"stop_distance": 5, "stop_level": 2000}, "give at most one of stop_distance and stop_level"),
    ({"action": "close"}, "close takes no size"),
    ({"deal_id": "D1"}, "deal_id applies to close and cancel only"),
]  # fmt: skip


def test_every_dealing_rule_has_its_422(start_service, account_id, intents_sim):
    svc = start_service(live=False)
    before = orders_posted(intents_sim)
    for n, (fields, field, rule, bound) in enumerate(MARKET_RULES):
        answer = svc.post(intent(account_id, alert_id=f"rule-{n}", **fields))
        assert answer.status_code == 422, (fields, answer.text)
        body = answer.json()
        assert body["intent"]["state"] == "REJECTED"
        found = [v for v in body["violations"] if v["rule"] == rule]
        assert found, (rule, body["violations"])
        assert found[0]["field"] == field
        given = fields.get(field) or fields.get("level") or fields.get("size")
        if bound in ("<", ">"):
            limit = Decimal(found[0]["bound"])
            value = Decimal(str(given))
            assert (value < limit) if bound == ">" else (value > limit), (fields, limit)
        elif bound is not None:
            assert found[0]["bound"] == bound
    assert orders_posted(intents_sim) == before


def test_every_violation_is_listed_at_once(start_service, account_id):
    svc = start_service(live=False)
    answer = svc.post(intent(account_id, alert_id="many", size="0.05", stop_distance="0.1",
                             profit_distance=2000))  # fmt: skip
    rules = sorted(v["rule"] for v in answer.json()["violations"])
    assert rules == ["max_profit_distance", "min_size", "min_stop_distance", "size_increment"]


def test_every_payload_shape_rule_has_its_422(start_service, account_id):
    svc = start_service(live=False)
    for n, (fields, detail) in enumerate(SHAPE_RULES):
        body = intent(account_id, alert_id=f"shape-{n}", **fields)
        if fields.get("size", 1) is None:
            body.pop("size", None)
        answer = svc.post(body)
        assert answer.status_code == 422, (fields, answer.text)
        details = [v["detail"] for v in answer.json()["violations"]]
        assert detail in details, (fields, details)
    unknown = svc.post(intent(account_id, alert_id="typo", stop_distnce=5))
    assert unknown.status_code == 422
    assert unknown.json()["violations"][0]["field"] == "stop_distnce"


def test_symbols_map_through_the_user_map_and_the_exchange_prefix(
    start_service, account_id, tmp_path
):
    mapping = tmp_path / "symbols.json"
    mapping.write_text(json.dumps({"TVC:GOLD": "GOLD"}))
    svc = start_service(live=False, symbol_map=mapping)
    for symbol, epic in (("TVC:GOLD", "GOLD"), ("FX:EURUSD", "EURUSD")):
        body = intent(account_id, alert_id=symbol, symbol=symbol, epic=None, size=1000)
        if epic == "GOLD":
            body["size"] = 1
        answer = svc.post(body)
        assert answer.status_code == 202, answer.text
        assert answer.json()["intent"]["epic"] == epic


def test_risk_amount_sizes_down_to_the_increment(start_service, account_id):
    svc = start_service(live=False)
    # 55 USD at a 7-point stop on GOLD (lot 1, a USD account): 7.857... -> 7.8, never 7.9.
    answer = svc.post(intent(account_id, alert_id="risk", size=None, risk_amount=55,
                             stop_distance=7))  # fmt: skip
    assert answer.status_code == 202, answer.text
    assert answer.json()["intent"]["order"]["size"] == "7.8"


def test_an_epic_outside_the_allowed_list_is_refused(start_service, account_id):
    svc = start_service(live=False, allowed_epics=frozenset({"GOLD"}))
    answer = svc.post(intent(account_id, alert_id="allowed", epic="SILVER", size=1))
    assert answer.status_code == 422
    assert answer.json()["violations"][0]["rule"] == "allowed_epics"


def test_the_governance_policy_rejects_before_sending(
    start_service, account_id, intents_sim, tmp_path
):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"require_stop": True, "max_notional": {"per_epic": {"*": 1000}}}))
    svc = start_service(policy=policy)
    before = orders_posted(intents_sim)
    answer = svc.post(intent(account_id, alert_id="policy", size=1))
    assert answer.status_code == 202
    final = wait_final(svc, answer.json()["intent"]["id"])
    assert final["state"] == "REJECTED"
    assert "require_stop" in final["reason"] and "max_notional.per_epic" in final["reason"]
    assert orders_posted(intents_sim) == before


def test_orders_per_minute_cap(start_service, account_id, intents_sim):
    svc = start_service(max_orders_per_minute=1)
    first = svc.post(intent(account_id, alert_id="pm-1", epic="EURUSD", size=1000))
    assert wait_final(svc, first.json()["intent"]["id"])["state"] == "ACCEPTED"
    before = orders_posted(intents_sim)
    second = svc.post(intent(account_id, alert_id="pm-2", epic="EURUSD", size=1000))
    final = wait_final(svc, second.json()["intent"]["id"])
    assert final["state"] == "REJECTED"
    assert "max_orders_per_minute" in final["reason"]
    assert orders_posted(intents_sim) == before


def test_daily_loss_cap(start_service, broker_client, intents_sim):
    account = broker_client.accounts()[1].account_id
    svc = start_service(daily_loss_cap=Decimal("0.000001"))
    # A fresh position shows a loss of the spread at once.
    first = svc.post(intent(account, alert_id="loss-1", epic="GOLD", size=5))
    assert wait_final(svc, first.json()["intent"]["id"])["state"] == "ACCEPTED"
    second = svc.post(intent(account, alert_id="loss-2", epic="GOLD", size=1))
    final = wait_final(svc, second.json()["intent"]["id"])
    assert final["state"] == "REJECTED"
    assert "daily_loss_cap" in final["reason"]


def test_symbols_map_through_the_instrument_master(start_service, account_id, intents_db):
    """A TRADINGVIEW id from the user's instrument mapping, stored in the instrument master."""
    from datetime import UTC, datetime

    from ledger_etl.trading.instruments import InstrumentAttributes
    from ledger_etl.trading.store import upsert_instruments

    gold = InstrumentAttributes(
        "GOLD", "Gold", "Gold", "COMMODITIES", "USD", Decimal(1), Decimal(5), "PERCENTAGE",
        True, {}, {"TRADINGVIEW": "OANDA:XAUUSD"},
    )  # fmt: skip
    with intents_db.begin() as conn:
        upsert_instruments(conn, datetime.now(UTC), [gold])
    svc = start_service(live=False)
    body = intent(account_id, alert_id="master", symbol="OANDA:XAUUSD", epic=None, size=1)
    answer = svc.post(body)
    assert answer.status_code == 202, answer.text
    assert answer.json()["intent"]["epic"] == "GOLD"
