"""A simulator without the rate limit, a client of it, and its clock, for market-extras tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ledger_etl.capital.client import CapitalClient
from ledger_etl.simulator import SimulatorServer
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD, database_url_of, make_server

# Two weeks of account history before TEST_NOW: the first login (which computes balances) is
# quick, and market data does not depend on the accounts.
RECENT_START = date(2026, 1, 1)


def market_server() -> SimulatorServer:
    return make_server(rate_limit_per_second=0, start=RECENT_START)


@pytest.fixture
def market_sim() -> Iterator[SimulatorServer]:
    server = market_server()
    server.simulator.clock.freeze()  # tests move time themselves
    yield server
    server.stop()


@pytest.fixture
def client(market_sim: SimulatorServer) -> Iterator[CapitalClient]:
    with CapitalClient(market_sim.url, API_KEY, IDENTIFIER, PASSWORD, rate_limit=200) as c:
        yield c


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Engine:
    """For command-line tests: the commands call the functions the both-backend tests cover."""
    from ledger_etl.ledger.db import make_engine

    return make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}")


def cli_env(server: SimulatorServer, engine: Engine) -> dict[str, str]:
    return {
        "CAPITAL_API_URL": server.url,
        "CAPITAL_API_KEY": API_KEY,
        "CAPITAL_IDENTIFIER": IDENTIFIER,
        "CAPITAL_PASSWORD": PASSWORD,
        "CAPITAL_RATE_LIMIT": "200",
        "LEDGER_DATABASE_URL": database_url_of(engine),
    }


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
