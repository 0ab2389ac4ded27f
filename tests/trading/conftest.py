"""Fixtures for trading state: a simulator with a frozen clock and a client logged in to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger_etl.capital import CapitalClient
from ledger_etl.simulator import SimulatorServer
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD, make_server


@pytest.fixture
def frozen_sim() -> Iterator[SimulatorServer]:
    """A fresh simulator whose clock moves only when a test advances it."""
    server = make_server(rate_limit_per_second=0)
    server.simulator.clock.freeze()
    yield server
    server.stop()


@pytest.fixture
def sim_client(frozen_sim: SimulatorServer) -> Iterator[CapitalClient]:
    with CapitalClient(frozen_sim.url, API_KEY, IDENTIFIER, PASSWORD, rate_limit=100) as client:
        yield client


def advance(server: SimulatorServer, seconds: float) -> None:
    server.simulator.clock.advance(seconds)


def account_ids(client: CapitalClient) -> list[str]:
    return [a.account_id for a in client.accounts()]
