"""Shared fixtures: a real simulator over HTTP on loopback, with a controllable clock."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from ledger_etl.simulator import Clock, SimulatorConfig, SimulatorServer, WorldConfig

# The simulated "now" of most tests: fixed, so history and balances are reproducible.
TEST_NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
TEST_START = date(2025, 1, 1)
# Stream tests need no account history: a short one keeps the simulator's first login fast.
STREAM_WORLD_START = date(2026, 1, 1)
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


# -- ledger databases ---------------------------------------------------------------------------
def _postgres_url() -> str | None:
    return os.environ.get("LEDGER_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A reachable PostgreSQL; skipped locally without one, a failure in CI (CI=true)."""
    import psycopg

    url = _postgres_url()
    reason = "no PostgreSQL: set LEDGER_TEST_POSTGRES_URL or run the tests via `make test`"
    if url:
        try:
            psycopg.connect(url, connect_timeout=5).close()
        except psycopg.Error as exc:
            reason = f"PostgreSQL at LEDGER_TEST_POSTGRES_URL is unreachable: {exc}"
            url = None
    if url is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (PostgreSQL tests must run in CI)")
        pytest.skip(reason)
    return url


def make_test_engine(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Engine:
    from sqlalchemy import text

    from ledger_etl.ledger.db import make_engine

    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
        SUBPROCESS_URLS.pop(id(engine), None)  # a stale entry of a collected PostgreSQL engine
        return engine
    url = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})

    def drop() -> None:
        SUBPROCESS_URLS.pop(id(engine), None)  # ids are reused once the engine is collected
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()

    request.addfinalizer(drop)
    SUBPROCESS_URLS[id(engine)] = f"{url}?options=-csearch_path%3D{schema}"
    return engine


SUBPROCESS_URLS: dict[int, str] = {}


def database_url_of(engine: Engine) -> str:
    """A LEDGER_DATABASE_URL reaching the same database (and schema) as `engine`."""
    return SUBPROCESS_URLS.get(id(engine)) or engine.url.render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    """An empty ledger database on each backend (a fresh file / a fresh schema per test)."""
    return make_test_engine(request.param, tmp_path, request)
