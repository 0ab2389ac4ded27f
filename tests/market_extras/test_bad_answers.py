"""Bad answers from the broker: unusable rows are reported with a reason, bad bodies are errors
(never an empty snapshot), and nothing half-written is left behind."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select

from ledger_etl.capital.client import CapitalClient
from ledger_etl.capital.errors import MalformedResponseError
from ledger_etl.capital.sentiment import _Collector
from ledger_etl.ledger import schema as s
from ledger_etl.market.sentiment import poll_sentiment
from ledger_etl.market.watchlists import poll_watchlists
from ledger_etl.simulator import SimulatorServer
from tests.conftest import IDENTIFIER, PASSWORD
from tests.market_extras.conftest import api_key_of


def test_unusable_sentiment_rows_are_reported_with_their_reason() -> None:
    collector = _Collector()
    collector._take(
        [
            {"marketId": "GOLD", "longPositionPercentage": Decimal("60"),
             "shortPositionPercentage": Decimal("40"), "newField": "kept"},
            {"marketId": "SILVER", "longPositionPercentage": "lots",
             "shortPositionPercentage": Decimal("40")},
            {"marketId": "US500", "longPositionPercentage": Decimal("120"),
             "shortPositionPercentage": Decimal("-20")},
            {"marketId": "AAPL", "longPositionPercentage": Decimal("50"),
             "shortPositionPercentage": Decimal("50")},
            {"marketId": "GOLD", "longPositionPercentage": Decimal("61"),
             "shortPositionPercentage": Decimal("39")},
            "not an object",
        ],
        ["GOLD", "SILVER", "US500", "EURUSD"],
    )  # fmt: skip
    assert [x.market_id for x in collector.found] == ["GOLD"]
    assert collector.found[0].extra_fields == {"newField": "kept"}
    reasons = [p.reason for p in collector.problems]
    assert any(r.startswith("longPositionPercentage: Value error, not a decimal") for r in reasons)
    assert any("outside 0..100" in r for r in reasons)
    assert "market AAPL not asked for" in reasons
    assert "market GOLD answered twice" in reasons
    assert "row is a str, not an object" in reasons
    assert "asked for, not answered" in reasons  # EURUSD


@pytest.mark.parametrize("kind", ["truncated_json", "html"])
def test_a_bad_body_is_retried_and_never_taken_for_an_empty_snapshot(
    market_sim: SimulatorServer, client: CapitalClient, sqlite_engine: Engine, kind: str
) -> None:
    market_sim.simulator.faults.add_rule({"kind": kind, "path": "^/clientsentiment", "nth": [1]})
    report = poll_sentiment(client, sqlite_engine, ["GOLD", "SILVER"])
    assert report.write.inserted == 2  # the second answer was whole
    assert client.stats.snapshot()["retries"] >= 1


def test_a_body_that_stays_bad_fails_the_poll_and_writes_nothing(
    market_sim: SimulatorServer, ledger_engine: Engine
) -> None:
    market_sim.simulator.faults.add_rule({"kind": "truncated_json", "path": "^/watchlists$"})
    with (
        CapitalClient(
            market_sim.url, api_key_of(market_sim), IDENTIFIER, PASSWORD, max_attempts=2
        ) as client,
        pytest.raises(MalformedResponseError),
    ):
        poll_watchlists(client, ledger_engine)
    with ledger_engine.connect() as conn:
        for table in (s.watchlists, s.watchlist_members, s.watchlist_polls):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0
        run = conn.execute(select(s.runs.c.status).where(s.runs.c.kind == "watchlists")).one()
    assert run.status == "failed"
