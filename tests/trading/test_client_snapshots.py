"""The live-state client against the simulator over HTTP: snapshots per account, market details
in batches of 50 with unknown epics named, confirms, and malformed rows flagged."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from ledger_etl.capital import ApiError, CapitalClient
from ledger_etl.capital.models import RowProblem
from ledger_etl.capital.trading import (
    MARKETS_BATCH,
    fetch_confirm,
    fetch_market_details,
    fetch_positions,
    fetch_working_orders,
)
from ledger_etl.capital.trading_models import parse_position, parse_working_order
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD


@pytest.fixture
def client(shared_sim):
    with CapitalClient(shared_sim.url, API_KEY, IDENTIFIER, PASSWORD, rate_limit=50) as c:
        yield c


def _truth_accounts(shared_api) -> list[str]:
    return [a["accountId"] for a in shared_api.accounts()]


def test_positions_and_orders_are_scoped_to_the_account(client, shared_api):
    seen = {}
    for account_id in _truth_accounts(shared_api)[:2]:
        with client.on_account(account_id):
            positions = fetch_positions(client)
            orders = fetch_working_orders(client)
        shared_api.switch(account_id)
        raw = shared_api.get("/positions").json()["positions"]
        assert [p.position.deal_id for p in positions.rows] == [
            r["position"]["dealId"] for r in raw
        ]
        assert not positions.problems and not orders.problems
        for p in positions.rows:
            assert isinstance(p.position.size, Decimal) and p.position.size > 0
            assert p.position.created_date_utc.tzinfo is not None
        for o in orders.rows:
            assert isinstance(o.working_order_data.order_level, Decimal)
        seen[account_id] = {p.position.deal_id for p in positions.rows}
    first, second = seen.values()
    assert not first & second


def test_market_details_batches_of_fifty_and_names_unknown_epics(client, shared_sim):
    epics = ["GOLD", "EURUSD", "NOPE_1", "USDJPY", "NOPE_2"]
    read = fetch_market_details(client, epics)
    assert sorted(read.details) == ["EURUSD", "GOLD", "USDJPY"]
    assert sorted(read.unknown_epics) == ["NOPE_1", "NOPE_2"]
    gold = read.details["GOLD"]
    assert gold.instrument.margin_factor == Decimal(5)
    assert gold.instrument.margin_factor_unit == "PERCENTAGE"
    assert gold.snapshot is not None and gold.snapshot.bid < gold.snapshot.offer
    assert "minStopOrProfitDistance" in gold.dealing_rules


class _Recording(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.epic_lists: list[list[str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        epics = request.url.params.get("epics")
        if epics is not None:
            self.epic_lists.append(epics.split(","))
        return super().handle_request(request)


def test_market_details_go_in_batches_of_fifty(shared_sim):
    transport = _Recording()
    many = ["GOLD", "SILVER", "DE40"]
    with CapitalClient(shared_sim.url, API_KEY, IDENTIFIER, PASSWORD, rate_limit=50,
                       transport=transport) as c:  # fmt: skip
        read = fetch_market_details(c, [*many, *(f"X{i:03d}" for i in range(117))])
    assert sorted(read.details) == ["DE40", "GOLD", "SILVER"]
    assert len(read.unknown_epics) == 117
    assert max(len(e) for e in transport.epic_lists) == MARKETS_BATCH
    assert len(transport.epic_lists[0]) == MARKETS_BATCH


def test_confirm_of_a_generated_deal(client, shared_api):
    account_id = _truth_accounts(shared_api)[0]
    with client.on_account(account_id):
        positions = fetch_positions(client)
        assert positions.rows, "the generated world has open positions at TEST_NOW"
        position = positions.rows[0].position
        confirm = fetch_confirm(client, position.deal_reference)
        with pytest.raises(ApiError) as missing:
            fetch_confirm(client, "o_00000000-nope", attempts=2, wait_s=0.01)
    assert confirm.accepted and confirm.level == position.level
    assert missing.value.error_code == "error.not-found.dealReference"


def test_rows_missing_fields_are_flagged_not_dropped():
    good = {
        "position": {"dealId": "D1", "createdDateUTC": "2026-01-01T10:00:00.000",
                     "direction": "BUY", "size": 1, "level": Decimal("2.5"), "mystery": 7},
        "market": {"epic": "GOLD", "bid": Decimal("1.5")},
    }  # fmt: skip
    parsed = parse_position(good)
    assert not isinstance(parsed, RowProblem)
    assert parsed.position.extra_fields == {"mystery": 7}
    missing = parse_position({"position": {"dealId": "D2"}, "market": {"epic": "GOLD"}})
    assert isinstance(missing, RowProblem) and "position.level" in missing.reason
    floaty = parse_working_order({"workingOrderData": {"orderLevel": 1.5}, "marketData": {}})
    assert isinstance(floaty, RowProblem) and "workingOrderData.dealId" in floaty.reason
