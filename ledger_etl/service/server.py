"""The read service on a background thread (tests, benchmarks): `ServiceServer(config)`."""

from __future__ import annotations

import threading
import time
from types import TracebackType

import uvicorn

from ledger_etl.service.app import ServiceConfig, create_app, install_log_redaction
from ledger_etl.simulator.server import free_port


class ServiceServer:
    """`with ServiceServer(config) as server: server.url`; real HTTP on loopback."""

    def __init__(
        self, config: ServiceConfig, host: str = "127.0.0.1", access_log: bool = True
    ) -> None:
        self.config = config
        self.app = create_app(config)
        self.host = host
        self.port = free_port(host)
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host=host,
                port=self.port,
                log_level="info" if access_log else "warning",
                access_log=access_log,
                server_header=False,
                proxy_headers=False,
            )
        )
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> ServiceServer:
        install_log_redaction()
        self._thread = threading.Thread(target=self._server.run, name="read-service", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the read service did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> ServiceServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
