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


def _running(request: pytest.FixtureRequest, factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = factory.mktemp(f"service-{request.param}")
    engine = make_test_engine(request.param, tmp, request)
    world = make_world(engine, tmp / "exports")
    server, tokens = start_service(world)
    yield Running(world, server, tokens)
    server.stop()


@pytest.fixture(scope="package", params=["sqlite", "postgresql"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """One world and one running service per backend, shared by the read-only tests."""
    yield from _running(request, tmp_path_factory)


@pytest.fixture(
    scope="package", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]
)
def browser_service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """The same for the browser tests, whose PostgreSQL round runs in CI (marked slow)."""
    yield from _running(request, tmp_path_factory)


@pytest.fixture
def own_service(ledger_engine, tmp_path: Path) -> Iterator[Running]:
    """A world and service of one's own, for tests that change files or users."""
    world = make_world(ledger_engine, tmp_path / "exports")
    server, tokens = start_service(world)
    yield Running(world, server, tokens)
    server.stop()


# -- browser (Playwright driving the system's chromium) ----------------------------------------
CHROMIUM = Path("/usr/bin/chromium")
ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


def _skip_or_fail(reason: str) -> None:
    import os

    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (browser tests must run in CI)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Chromium from Debian (`apt-get install chromium`); never a downloaded browser build."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("playwright is not installed: pip install -e '.[dev]'")
    if not CHROMIUM.exists():
        _skip_or_fail(f"{CHROMIUM} is missing: apt-get install chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh browser context per test; a failed test leaves a screenshot in test-artifacts/."""
    context = browser.new_context(accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in request.node.name)
        tab.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)
    context.close()
