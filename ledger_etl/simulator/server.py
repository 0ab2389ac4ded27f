"""Serve the simulator with uvicorn: in the foreground (CLI) or on a background thread.

`SimulatorServer` is what commands and tests use when no `CAPITAL_API_URL` is configured: it binds a
free loopback port, starts serving before returning, and stops cleanly.
"""

from __future__ import annotations

import logging
import socket

import uvicorn

from ledger_etl.simulator.app import Simulator
from ledger_etl.simulator.clock import Clock
from ledger_etl.simulator.config import SimulatorConfig
from ledger_etl.threaded_server import ThreadedServer


class _DroppedResponseFilter(logging.Filter):
    """Dropped connections are an injected fault, not a server error worth a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing response" not in record.getMessage()


def _quiet_uvicorn() -> None:
    logging.getLogger("uvicorn.error").addFilter(_DroppedResponseFilter())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def serve_forever(simulator: Simulator, host: str, port: int, log_level: str = "info") -> None:
    _quiet_uvicorn()
    uvicorn.run(
        simulator,
        host=host,
        port=port,
        http="h11",
        log_level=log_level,
        lifespan="on",
        access_log=log_level == "debug",
    )


class SimulatorServer(ThreadedServer):
    """A simulator on a background thread. `with SimulatorServer() as sim: sim.url`."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self.simulator = Simulator(config, clock)
        self.host = host
        self.port = port or free_port(host)
        self._server = self._quiet_server(self.simulator)

    _thread_name = "capital-simulator"
    _what = "the simulator"

    def _before_start(self) -> None:
        _quiet_uvicorn()
