"""Putting the service together: settings -> broker, intake, executor, app; and running them.

`IntentsService` runs the webhook (uvicorn) and the executor (a thread) in one process, in the
foreground for `ledger-etl intents serve` or in the background for tests and benchmarks.

Safety at start: dry-run unless `live`; with `live`, a broker that is not a demo is refused
unless CAPITAL_ALLOW_LIVE_TRADING=true (see `live_account_reasons`).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

import uvicorn
from sqlalchemy import Engine

from ledger_etl.capital import CapitalClient
from ledger_etl.errors import InputError
from ledger_etl.ledger.db import defer_checkpoints
from ledger_etl.simulator.server import free_port
from ledger_etl.trading.policy import load_policy

from . import store
from .auth import Allowlist
from .broker import CapitalBroker
from .executor import Executor
from .intake import Intake, load_symbol_map
from .risk import Caps
from .service import ServiceContext, create_app

log = logging.getLogger("ledger_etl.intents")
WARM_HISTORY = timedelta(days=7)  # the markets of intents this recent are read at start
RISK_WARNING = (
    "CFDs are complex instruments and come with a high risk of losing money rapidly due to "
    "leverage. Orders sent from alerts execute without a person looking at them: check every "
    "risk cap before going live."
)
DEMO_HOSTS = ("demo-api-capital.backend-capital.com",)


class LiveTradingRefused(InputError):
    """`--live` against a non-demo broker without CAPITAL_ALLOW_LIVE_TRADING=true."""


@dataclass(frozen=True)
class Options:
    secret: str
    hmac_secret: str | None = None
    allowed_ips: tuple[str, ...] = ()
    symbol_map: Path | None = None
    policy: Path | None = None
    allowed_epics: frozenset[str] | None = None
    max_orders_per_minute: int | None = None
    daily_loss_cap: Decimal | None = None
    live: bool = False
    allow_live_trading: bool = False


def live_account_reasons(client: CapitalClient) -> list[str]:
    """Why this broker counts as live (empty: a demo). The host decides which accounts a key
    sees, so the host decides: Capital.com's demo host, or a loopback address (the bundled or a
    local simulator), is a demo; every other host is live. Nothing is asked of the broker."""
    host = urlparse(client.base_url).hostname or ""
    if host in DEMO_HOSTS or host == "localhost":
        return []
    try:
        if ipaddress.ip_address(host).is_loopback:
            return []
    except ValueError:
        pass
    return [f"{host} is not a demo host"]


def check_live(client: CapitalClient, options: Options) -> None:
    if not options.live:
        return
    reasons = live_account_reasons(client)
    if reasons and not options.allow_live_trading:
        raise LiveTradingRefused(
            "refusing to send orders to a live account (" + "; ".join(reasons) + "): set "
            "CAPITAL_ALLOW_LIVE_TRADING=true to allow it, or run without --live (dry run)"
        )


def build(
    engine: Engine, client: CapitalClient, options: Options
) -> tuple[ServiceContext, Executor]:
    check_live(client, options)
    # Commits that answer webhooks never copy the WAL back; the executor checkpoints it.
    defer_checkpoints(engine)
    broker = CapitalBroker(client)
    caps = Caps(
        options.allowed_epics,
        options.max_orders_per_minute,
        options.daily_loss_cap,
        load_policy(options.policy) if options.policy else None,
    )
    mode = "live" if options.live else "dry_run"
    intake = Intake(engine, broker, caps, load_symbol_map(options.symbol_map), mode)
    ctx = ServiceContext(
        intake, options.secret, options.hmac_secret, Allowlist(options.allowed_ips)
    )
    executor = Executor(engine, broker, caps, live=options.live)
    since = datetime.now(UTC) - WARM_HISTORY
    executor.warm_epics = sorted(
        set(options.allowed_epics or ())
        | set(intake.symbol_map.values())
        | set(store.recent_epics(engine, since))
    )
    return ctx, executor


class IntentsService:
    """The webhook and the executor on background threads: `start()`, `url`, `stop()`."""

    def __init__(
        self,
        ctx: ServiceContext,
        executor: Executor,
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self.ctx, self.executor = ctx, executor
        self.host, self.port = host, port or free_port(host)
        self.app = create_app(ctx)
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host=host,
                port=self.port,
                http="h11",
                lifespan="off",
                log_level="warning",
                access_log=False,
            )
        )
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0, executor: bool = True) -> IntentsService:
        web = threading.Thread(target=self._server.run, name="intents-http", daemon=True)
        self._threads = [web]
        if executor:
            self._threads.append(
                threading.Thread(
                    target=self.executor.run,
                    args=(self._stop,),
                    name="intents-executor",
                    daemon=True,
                )
            )
        for t in self._threads:
            t.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not web.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the intents service did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.should_exit = True
        for t in self._threads:
            t.join(timeout=10)
        self._threads = []

    def serve_forever(self) -> None:
        """Foreground: the executor on a thread, uvicorn in this one (Ctrl-C stops both)."""
        worker = threading.Thread(
            target=self.executor.run, args=(self._stop,), name="intents-executor", daemon=True
        )
        worker.start()
        try:
            uvicorn.Server(self._server.config).run()  # with uvicorn's own signal handlers
        finally:
            self._stop.set()
            worker.join(timeout=10)
