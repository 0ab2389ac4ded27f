"""A service over trading snapshots and stored bars, filled the way the CLI fills them: a
`ledger-etl snapshot` poll of the simulator and a `ledger-etl prices backfill` over REST."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from ledger_etl.cli import main
from ledger_etl.ledger.db import upgrade
from ledger_etl.service.app import ServiceConfig
from ledger_etl.service.auth import FailureLimiter
from ledger_etl.service.server import ServiceServer
from ledger_etl.service.users import add_user
from tests.conftest import (
    API_KEY,
    IDENTIFIER,
    PASSWORD,
    database_url_of,
    make_server,
    make_test_engine,
)

BARS = ("--epic", "GOLD", "--resolution", "MINUTE",
        "--from", "2026-01-15T08:00:00Z", "--to", "2026-01-15T09:00:00Z")  # fmt: skip


@dataclass
class Trading:
    engine: Engine
    server: ServiceServer
    account: str
    tokens: dict[str, str]
    env: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, user: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=30)

    def cli_json(self, *args: str) -> object:
        """What `ledger-etl ARGS --format json` prints, parsed."""
        done = CliRunner().invoke(main, [*args, "--format", "json"], env=self.env)
        assert done.exit_code == 0, done.output
        return json.loads(done.output)


def start_trading(request: pytest.FixtureRequest, tmp: Path) -> Iterator[Trading]:
    engine = make_test_engine(request.param, tmp, request)
    upgrade(engine)
    sim = make_server(rate_limit_per_second=0, login_rate_per_second=0)
    sim.simulator.clock.freeze()
    try:
        account = sim.simulator.world.accounts[0].account_id
        env = {
            "CAPITAL_API_URL": sim.url, "CAPITAL_API_KEY": API_KEY,
            "CAPITAL_IDENTIFIER": IDENTIFIER, "CAPITAL_PASSWORD": PASSWORD,
            "CAPITAL_RATE_LIMIT": "200", "LEDGER_DATABASE_URL": database_url_of(engine),
            "LEDGER_EXPORT_DIR": str(tmp / "exports"),
        }  # fmt: skip
        runner = CliRunner()
        polled = runner.invoke(main, ["snapshot", "--account", account], env=env)
        assert polled.exit_code == 0, polled.output
        filled = runner.invoke(main, ["prices", "backfill", *BARS], env=env)
        assert filled.exit_code == 0, filled.output
    finally:
        sim.stop()
    users = {
        "rita": ("risk", (account,)),
        "fay": ("finance", (account,)),
        "otto": ("risk", ("ACC-ELSEWHERE",)),
        "root": ("admin", ("*",)),
    }
    tokens = {name: add_user(engine, name, role, scope) for name, (role, scope) in users.items()}
    config = ServiceConfig(engine, tmp / "exports", limiter=FailureLimiter(1000))
    server = ServiceServer(config).start()
    yield Trading(engine, server, account, tokens, env)
    server.stop()
