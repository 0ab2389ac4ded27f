"""Serve the simulator with uvicorn: in the foreground (CLI) or on a background thread.

`SimulatorServer` is what commands and tests use when no `CAPITAL_API_URL` is configured: it binds a
free loopback port, starts serving before returning, and stops cleanly.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import TracebackType

import uvicorn

from ledger_etl.simulator.app import Simulator
from ledger_etl.simulator.clock import Clock
from ledger_etl.simulator.config import SimulatorConfig


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


class SimulatorServer:
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
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.simulator,
                host=host,
                port=self.port,
                http="h11",
                lifespan="on",
                log_level="warning",
                access_log=False,
            )
        )
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The host URL; clients add `/api/v1`."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> SimulatorServer:
        _quiet_uvicorn()
        self._thread = threading.Thread(
            target=self._server.run, name="capital-simulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the simulator did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
