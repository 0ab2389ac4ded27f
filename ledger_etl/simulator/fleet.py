"""Several Capital.com logins on one simulator server.

Each login is a whole simulator of its own (its API key, identifier and password, its world and
so its accounts, its rate limits, sessions and faults), served under `/<login>`: a login's API
URL is `<server>/<login>` (the client adds `/api/v1`), and its operator routes are
`<server>/<login>/_sim/...`. The server's own `/_sim/requests` counts every login's requests
per second, which is what a test of per-login pacing reads. One login served by
`SimulatorServer` stays exactly as it was.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ledger_etl.simulator.app import Simulator
from ledger_etl.simulator.clock import Clock
from ledger_etl.simulator.config import SimulatorConfig
from ledger_etl.simulator.server import _quiet_uvicorn, free_port
from ledger_etl.threaded_server import ThreadedServer

Send = Callable[[dict], Awaitable[None]]


def busiest_second(stamps: list[float]) -> int:
    """The most requests that arrived within any one second (a sliding window, not calendar
    seconds: five at x.9 and five at y.1 count as ten)."""
    ordered = sorted(stamps)
    most = start = 0
    for end, stamp in enumerate(ordered):
        while stamp - ordered[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


class SimulatorFleet:
    """The ASGI application: `/<login>/...` goes to that login's simulator."""

    def __init__(self, logins: Mapping[str, SimulatorConfig], clock: Clock | None = None) -> None:
        if not logins:
            raise ValueError("a fleet needs at least one login")
        for name in logins:
            if not name or "/" in name or name == "_sim":
                raise ValueError(f"{name!r} cannot name a login of the simulator")
        self.clock = clock or Clock()
        self.simulators = {name: Simulator(c, self.clock) for name, c in logins.items()}

    def requests_by_login(self) -> dict[str, dict[str, Any]]:
        """Per login: requests in total, per clock second, and the most in any one second."""
        result: dict[str, dict[str, Any]] = {}
        for name, sim in self.simulators.items():
            with sim.stats.lock:
                stamps = [entry["arrived"] for entry in sim.stats.log]
                throttled = sim.stats.throttled
            per_second = Counter(int(t) for t in stamps)
            result[name] = {
                "requests": len(stamps),
                "per_second": {str(k): v for k, v in sorted(per_second.items())},
                "busiest_second": busiest_second(stamps),
                "throttled": throttled,  # answered 429 by the login's own limit
                "rate_limit": sim.config.rate_limit_per_second,
            }
        return result

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] not in ("http", "websocket"):
            return
        path: str = scope["path"]
        name, _, rest = path.lstrip("/").partition("/")
        sim = self.simulators.get(name)
        if sim is not None:
            inner = dict(scope, path="/" + rest, raw_path=("/" + rest).encode())
            inner["root_path"] = scope.get("root_path", "") + "/" + name
            await sim(inner, receive, send)
            return
        if scope["type"] == "http" and path.rstrip("/") == "/_sim/requests":
            await _json(send, 200, {"logins": self.requests_by_login()})
            return
        if scope["type"] == "http":
            await _json(send, 404, {"errorCode": "error.not-found.path"})


async def _json(send: Send, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class FleetServer(ThreadedServer):
    """A fleet on a background thread: `with FleetServer({...}) as fleet: fleet.login_url(n)`."""

    _thread_name = "capital-simulator-fleet"
    _what = "the simulator fleet"

    def __init__(
        self,
        logins: Mapping[str, SimulatorConfig],
        *,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self.fleet = SimulatorFleet(logins, clock)
        self.host = host
        self.port = port or free_port(host)
        self._server = self._quiet_server(self.fleet)

    def _before_start(self) -> None:
        _quiet_uvicorn()

    def login_url(self, login: str) -> str:
        """The API URL of `login` (what its `api_url` in a credentials file says)."""
        if login not in self.fleet.simulators:
            raise KeyError(login)
        return f"{self.url}/{login}"
