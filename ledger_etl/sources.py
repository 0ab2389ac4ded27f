"""Where history comes from: the configured Capital.com API, or the bundled simulator.

`open_client()` is the one way commands get a `CapitalClient`: when `CAPITAL_API_URL` is unset it
starts the simulator on a free loopback port first, and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ledger_etl.capital.client import CapitalClient
from ledger_etl.settings import CapitalSettings, capital_settings


@contextmanager
def open_client(
    settings: CapitalSettings | None = None, say: Callable[[str], None] = print
) -> Iterator[CapitalClient]:
    settings = settings or capital_settings()
    if not settings.uses_simulator:
        with CapitalClient.from_settings(settings) as client:
            yield client
        return
    from ledger_etl.simulator import SimulatorServer

    with SimulatorServer() as server:
        say(
            f"CAPITAL_API_URL is not set: using the bundled Capital.com simulator at "
            f"{server.url} (seed 42). Set CAPITAL_API_URL and credentials for the real API."
        )
        with CapitalClient.from_settings(settings, base_url=server.url) as client:
            yield client
