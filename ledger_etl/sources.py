"""Where history comes from: the configured Capital.com API, or the bundled simulator.

`open_client()` is the one way commands and runs get a `CapitalClient`: when `CAPITAL_API_URL`
is unset it starts the simulator on a free loopback port first, and says so.

The bundled simulator's world is defined here, once: seed 42, two accounts opened on the first
day of the month `BUNDLED_HISTORY_MONTHS` months before the ledger's first sync (so a demo
ledger holds each account's whole history and reconciles quickly). A ledger records the world
it was filled from, and every later start of the bundled simulator for that ledger serves that
same world again, whoever starts it: the demo, the CLI, a Dagster run or `make dev`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from ledger_etl.capital.client import CapitalClient
from ledger_etl.provenance import bundled_source
from ledger_etl.settings import CapitalSettings, capital_settings

if TYPE_CHECKING:
    from ledger_etl.simulator import WorldConfig

BUNDLED_SEED = 42
BUNDLED_HISTORY_MONTHS = 3


def default_bundled_start(today: date) -> date:
    """The first day of the month `BUNDLED_HISTORY_MONTHS` months before `today`'s month."""
    months = today.year * 12 + today.month - 1 - BUNDLED_HISTORY_MONTHS
    return date(months // 12, months % 12 + 1, 1)


def bundled_world(ledger: Engine | None = None, today: date | None = None) -> WorldConfig:
    """The world the bundled simulator serves for `ledger`: the one it was filled from, or, for
    a ledger with none recorded (or none given), the default world starting from `today`."""
    from ledger_etl.ledger.db import upgrade
    from ledger_etl.ledger.provenance import recorded_bundled_world
    from ledger_etl.simulator import WorldConfig
    from ledger_etl.simulator.config import world_from_detail

    if ledger is not None:
        upgrade(ledger)
        recorded = recorded_bundled_world(ledger)
        if recorded is not None:
            return world_from_detail(recorded)
    start = default_bundled_start(today or datetime.now(UTC).date())
    return WorldConfig(seed=BUNDLED_SEED, start=start)


@contextmanager
def open_client(
    settings: CapitalSettings | None = None,
    say: Callable[[str], None] = print,
    ledger: Engine | None = None,
) -> Iterator[CapitalClient]:
    """A client of the configured API, or of the bundled simulator serving `ledger`'s world."""
    settings = settings or capital_settings()
    if not settings.uses_simulator:
        with CapitalClient.from_settings(settings) as client:
            yield client
        return
    from ledger_etl.simulator import SimulatorConfig, SimulatorServer
    from ledger_etl.simulator.config import world_detail

    world = bundled_world(ledger)
    source = bundled_source(world_detail(world))
    with SimulatorServer(SimulatorConfig(world=world)) as server:
        say(
            f"CAPITAL_API_URL is not set: using the bundled Capital.com simulator at "
            f"{server.url} (seed {world.seed}, accounts opened {world.start}). Set "
            "CAPITAL_API_URL and credentials for the real API."
        )
        with CapitalClient.from_settings(settings, base_url=server.url) as client:
            client.source = source
            yield client
