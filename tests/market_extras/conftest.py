"""A simulator without the rate limit, a client of it, and its clock, for market-extras tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ledger_etl.capital.client import CapitalClient
from ledger_etl.simulator import SimulatorServer
from tests.conftest import IDENTIFIER, PASSWORD, database_url_of, make_server

# Two weeks of account history before TEST_NOW: the first login (which computes balances) is
# quick, and market data does not depend on the accounts.
RECENT_START = date(2026, 1, 1)


def market_server() -> SimulatorServer:
    """A simulator with an API key of its own: logins are paced one a second per key across the
    whole process, so a key shared by every test would make each wait for the previous one."""
    return make_server(
        rate_limit_per_second=0, start=RECENT_START, api_key=f"sim-key-{uuid.uuid4().hex[:12]}"
    )


def api_key_of(server: SimulatorServer) -> str:
    return server.simulator.config.api_key


@pytest.fixture
def market_sim() -> Iterator[SimulatorServer]:
    server = market_server()
    server.simulator.clock.freeze()  # tests move time themselves
    yield server
    server.stop()


@pytest.fixture
def client(market_sim: SimulatorServer) -> Iterator[CapitalClient]:
    key = api_key_of(market_sim)
    with CapitalClient(market_sim.url, key, IDENTIFIER, PASSWORD, rate_limit=200) as c:
        yield c


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Engine:
    """For command-line tests: the commands call the functions the both-backend tests cover."""
    from ledger_etl.ledger.db import make_engine

    return make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}")


def cli_env(server: SimulatorServer, engine: Engine) -> dict[str, str]:
    return {
        "CAPITAL_API_URL": server.url,
        "CAPITAL_API_KEY": api_key_of(server),
        "CAPITAL_IDENTIFIER": IDENTIFIER,
        "CAPITAL_PASSWORD": PASSWORD,
        "CAPITAL_RATE_LIMIT": "200",
        "LEDGER_DATABASE_URL": database_url_of(engine),
    }


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
