"""The read service on a background thread (tests, benchmarks): `ServiceServer(config)`."""

from __future__ import annotations

import uvicorn

from ledger_etl.service.app import ServiceConfig, create_app, install_log_redaction
from ledger_etl.simulator.server import free_port
from ledger_etl.threaded_server import ThreadedServer


class ServiceServer(ThreadedServer):
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

    _thread_name = "read-service"
    _what = "the read service"

    def _before_start(self) -> None:
        install_log_redaction()
