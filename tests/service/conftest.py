"""Fixtures of the read-service tests: a world on each backend and the service over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ledger_etl.service.app import ServiceConfig
from ledger_etl.service.auth import FailureLimiter
from ledger_etl.service.server import ServiceServer
from ledger_etl.service.users import add_user
from tests.conftest import make_test_engine
from tests.service.world import FIRST, SECOND, World, make_world


@dataclass
class Running:
    world: World
    server: ServiceServer
    tokens: dict[str, str]  # user name -> token

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, user: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


USERS = {
    "ann": ("finance", (FIRST,)),  # reads ACC-1 only
    "bob": ("finance", (SECOND,)),  # reads ACC-2 only
    "rita": ("risk", (FIRST, SECOND)),
    "root": ("admin", ("*",)),
}


def start_service(
    world: World, limiter: FailureLimiter | None = None
) -> tuple[ServiceServer, dict[str, str]]:
    tokens = {
        name: add_user(world.engine, name, role, scope) for name, (role, scope) in USERS.items()
    }
    config = ServiceConfig(world.engine, world.export_root, limiter=limiter or FailureLimiter(1000))
    return ServiceServer(config).start(), tokens


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """One world and one running service per backend, shared by a module's read-only tests."""
    tmp = tmp_path_factory.mktemp(f"service-{request.param}")
    engine = make_test_engine(request.param, tmp, request)
    world = make_world(engine, tmp / "exports")
    server, tokens = start_service(world)
    yield Running(world, server, tokens)
    server.stop()


@pytest.fixture
def own_service(ledger_engine, tmp_path: Path) -> Iterator[Running]:
    """A world and service of one's own, for tests that change files or users."""
    world = make_world(ledger_engine, tmp_path / "exports")
    server, tokens = start_service(world)
    yield Running(world, server, tokens)
    server.stop()
