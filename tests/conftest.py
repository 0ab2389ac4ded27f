"""Shared fixtures: a real simulator over HTTP on loopback, with a controllable clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import httpx
import pytest

from ledger_etl.simulator import Clock, SimulatorConfig, SimulatorServer, WorldConfig

# The simulated "now" of most tests: fixed, so history and balances are reproducible.
TEST_NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
TEST_START = date(2025, 1, 1)
API_KEY = "sim-api-key"
IDENTIFIER = "sim@example.com"
PASSWORD = "sim-password"


def make_server(**overrides: object) -> SimulatorServer:
    world = WorldConfig(seed=int(overrides.pop("seed", 42)), start=TEST_START)  # type: ignore[call-overload]
    config = SimulatorConfig(world=world).with_overrides(**overrides)
    return SimulatorServer(config, clock=Clock(TEST_NOW)).start()


@pytest.fixture(scope="session")
def shared_sim() -> Iterator[SimulatorServer]:
    """One simulator for read-only tests (no faults, no clock changes)."""
    server = make_server(rate_limit_per_second=0)
    yield server
    server.stop()


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    """A fresh simulator per test, for tests that change faults, clock or sessions."""
    server = make_server()
    yield server
    server.stop()


class ApiSession:
    """A thin raw-HTTP helper for simulator tests (the product client lives in capital/)."""

    def __init__(self, server: SimulatorServer) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url + "/api/v1", timeout=10)
        self.admin = httpx.Client(base_url=server.url + "/_sim", timeout=30)
        self.tokens: dict[str, str] = {}

    def login(self) -> httpx.Response:
        response = self.http.post(
            "/session",
            json={"identifier": IDENTIFIER, "password": PASSWORD},
            headers={"X-CAP-API-KEY": API_KEY},
        )
        assert response.status_code == 200, response.text
        self.tokens = {
            "CST": response.headers["CST"],
            "X-SECURITY-TOKEN": response.headers["X-SECURITY-TOKEN"],
        }
        return response

    def get(self, path: str, **params: object) -> httpx.Response:
        return self.http.get(path, params=params, headers=self.tokens)

    def switch(self, account_id: str) -> httpx.Response:
        return self.http.put("/session", json={"accountId": account_id}, headers=self.tokens)

    def accounts(self) -> list[dict]:
        return self.admin.get("/accounts").json()["accounts"]

    def close(self) -> None:
        self.http.close()
        self.admin.close()


@pytest.fixture
def api(sim: SimulatorServer) -> Iterator[ApiSession]:
    session = ApiSession(sim)
    yield session
    session.close()


@pytest.fixture(scope="session")
def shared_api(shared_sim: SimulatorServer) -> Iterator[ApiSession]:
    session = ApiSession(shared_sim)
    session.login()
    yield session
    session.close()
