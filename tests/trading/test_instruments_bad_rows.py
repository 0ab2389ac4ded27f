"""The instrument master versions on change and reads the user's mapping file; a snapshot row
missing fields is flagged in the poll record while the other rows are stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from ledger_etl.capital import CapitalClient
from ledger_etl.ledger.db import upgrade
from ledger_etl.trading import store
from ledger_etl.trading.instruments import InstrumentAttributes, MappingFileError, load_mapping
from ledger_etl.trading.poll import poll_account
from ledger_etl.trading.query import snapshot_rows
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _gold(margin: str, ids: dict[str, str] | None = None) -> InstrumentAttributes:
    return InstrumentAttributes(
        "GOLD",
        "Gold",
        "Gold",
        "COMMODITIES",
        "USD",
        Decimal(1),
        Decimal(margin),
        "PERCENTAGE",
        True,
        {},
        ids or {},
    )


def test_a_changed_attribute_starts_a_version(ledger_engine):
    upgrade(ledger_engine)
    with ledger_engine.begin() as conn:
        assert store.upsert_instruments(conn, T0, [_gold("5")]) == 1
        assert store.upsert_instruments(conn, T0 + timedelta(hours=1), [_gold("5")]) == 0
        assert store.upsert_instruments(conn, T0 + timedelta(hours=2), [_gold("10")]) == 1
        ids = {"TRADINGVIEW": "TVC:GOLD"}
        assert store.upsert_instruments(conn, T0 + timedelta(hours=3), [_gold("10", ids)]) == 1
    with ledger_engine.connect() as conn:
        early = store.instruments_as_of(conn, ["GOLD"], T0 + timedelta(minutes=90))["GOLD"]
        late = store.instruments_as_of(conn, ["GOLD"], T0 + timedelta(hours=5))["GOLD"]
        before = store.instruments_as_of(conn, ["GOLD"], T0 - timedelta(seconds=1))
    assert early.instrument_id == "CAPITAL:GOLD" and early.margin_factor == Decimal(5)
    assert late.margin_factor == Decimal(10) and late.external_ids == ids
    assert early.valid_to == T0 + timedelta(hours=2) and late.valid_to is None
    assert before == {}


def test_mapping_file(tmp_path):
    good = tmp_path / "map.yaml"
    good.write_text("CAPITAL:EURUSD: {TradingView: 'FX:EURUSD'}\nAAPL: {ISIN: US0378331005}\n")
    assert load_mapping(good) == {
        "EURUSD": {"TRADINGVIEW": "FX:EURUSD"},
        "AAPL": {"ISIN": "US0378331005"},
    }
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"AAPL": {"CUSIP": "037833100"}}))
    with pytest.raises(MappingFileError, match="unknown scheme 'CUSIP'"):
        load_mapping(bad)
    with pytest.raises(MappingFileError, match="cannot read"):
        load_mapping(tmp_path / "missing.json")


class _DropLevel(httpx.HTTPTransport):
    """The real simulator over HTTP, with `level` removed from the first position."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path.endswith("/positions") and response.status_code == 200:
            body = json.loads(response.read())
            del body["positions"][0]["position"]["level"]
            return httpx.Response(200, headers=response.headers, json=body)
        return response


def test_a_row_missing_fields_is_flagged_and_the_others_stored(ledger_engine, frozen_sim):
    with CapitalClient(
        frozen_sim.url, API_KEY, IDENTIFIER, PASSWORD, rate_limit=100, transport=_DropLevel()
    ) as client:
        account = client.accounts()[0].account_id
        result = poll_account(client, ledger_engine, account)
    truth = frozen_sim.simulator.world.open_positions(0, result.observed_at)
    assert result.status == "complete" and len(truth) >= 2
    flagged = [p for p in result.problems if p["kind"] == "position"]
    assert len(flagged) == 1 and "position.level" in flagged[0]["reason"]
    _, rows = snapshot_rows(ledger_engine, "position", account, None)
    assert {r["deal_id"] for r in rows} == {p.deal_id for p in truth[1:]}
