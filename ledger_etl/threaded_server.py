"""A uvicorn server on a background thread, for the simulator and the read service (tests,
benchmarks, the bundled simulator): `start()` returns once it listens, `stop()` joins it."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Self

import uvicorn


class ThreadedServer:
    """Subclasses set `host`, `port` and `_server` (a `uvicorn.Server`), and name the thread."""

    host: str
    port: int
    _server: uvicorn.Server
    _thread_name = "uvicorn"
    _what = "the server"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _quiet_server(self, app: object) -> uvicorn.Server:
        """A uvicorn server of `app` on `host`:`port`: HTTP/1.1 (h11), lifespan on, warnings
        only, no access log (the simulator's and the simulator fleet's settings)."""
        config = uvicorn.Config(
            app,  # type: ignore[arg-type]
            host=self.host,
            port=self.port,
            http="h11",
            lifespan="on",
            log_level="warning",
            access_log=False,
        )
        return uvicorn.Server(config)

    def _before_start(self) -> None:
        """Logging set-up a subclass needs before the first request."""

    def start(self, timeout: float = 15.0) -> Self:
        self._before_start()
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread = threading.Thread(
            target=self._server.run, name=self._thread_name, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self._what} did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        thread = getattr(self, "_thread", None)
        if thread is None:
            return
        self._server.should_exit = True
        thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
