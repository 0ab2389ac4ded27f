"""Serve the simulator with uvicorn: in the foreground (CLI) or on a background thread.

`SimulatorServer` is what commands and tests use when no `CAPITAL_API_URL` is configured: it binds a
free loopback port, starts serving before returning, and stops cleanly.
"""

from __future__ import annotations

import gc
import logging
import socket
import threading
import time

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


# A serving process keeps large caches alive (each login's world, its days and items). With the
# interpreter's default thresholds a collection of the oldest generation walks all of them every
# few seconds under load and holds every answer for a quarter to a whole second, which bunches
# the arrivals it counts for the rate limit into 429s. A serving process therefore collects the
# young generations less often and the oldest one only while it is idle.
SERVING_GC_THRESHOLDS = (50_000, 20, 1_000_000)
IDLE_CPU_SHARE = 0.05  # of one core over `IDLE_PERIOD_S`: below it the process counts as idle
IDLE_PERIOD_S = 1.0
_collector_started = threading.Event()


def _collect_when_idle() -> None:
    last_cpu = time.process_time()
    while True:
        time.sleep(IDLE_PERIOD_S)
        cpu = time.process_time()
        if cpu - last_cpu < IDLE_CPU_SHARE * IDLE_PERIOD_S and gc.get_count()[2] > 0:
            gc.collect()
            cpu = time.process_time()
        last_cpu = cpu


def tune_gc_for_serving() -> None:
    """For a process that does nothing but serve the simulator: young collections every
    50,000 allocations instead of 700, and full collections only after a quiet second (a
    daemon thread watches the process's CPU time)."""
    gc.set_threshold(*SERVING_GC_THRESHOLDS)
    if not _collector_started.is_set():
        _collector_started.set()
        threading.Thread(target=_collect_when_idle, name="gc-when-idle", daemon=True).start()


def serve_forever(simulator: Simulator, host: str, port: int, log_level: str = "info") -> None:
    tune_gc_for_serving()
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
