"""The simulator as a plain ASGI application: `/api/v1/...` for clients, `/_sim/...` for operators.

Plain ASGI rather than a web framework because faults need the raw channel: a dropped connection
is a response started with a Content-Length and never finished.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from ledger_etl.simulator.clock import Clock
from ledger_etl.simulator.config import SimulatorConfig
from ledger_etl.simulator.errors import ApiError
from ledger_etl.simulator.faults import FaultDecision, FaultPlan, echo_text, encode_body
from ledger_etl.simulator.sessions import (
    PasswordDecryptor,
    Session,
    SessionStore,
    SlidingWindowLimiter,
)
from ledger_etl.simulator.watchlists import WatchlistBook
from ledger_etl.simulator.world import World

log = logging.getLogger("ledger_etl.simulator")
API_PREFIX = "/api/v1"
ADMIN_PREFIX = "/_sim"
MAX_BODY = 64 * 1024
HTML_BODY = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>Bad Gateway</h1></body></html>"
)


@dataclass
class Request:
    method: str
    path: str  # under the prefix, e.g. "/history/activity"
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes
    client: str
    session: Session | None = None
    query: str = ""  # the query string, percent-decoded (what fault rules' `query` searches)
    raw_query: str = ""  # the query string as sent

    def json(self) -> dict[str, Any]:
        if not self.body.strip():
            return {}
        try:
            data = json.loads(self.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "error.malformed.body") from None
        if not isinstance(data, dict):
            raise ApiError(400, "error.malformed.body")
        return data


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[["Simulator", Request], Reply]


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    by_path: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    logins: int = 0
    throttled: int = 0
    faults_fired: int = 0
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=20000))

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": sum(self.by_path.values()),
                "by_path": dict(self.by_path),
                "by_status": {str(k): v for k, v in self.by_status.items()},
                "logins": self.logins,
                "throttled": self.throttled,
                "faults_fired": self.faults_fired,
            }


class Simulator:
    """All simulator state; the ASGI entry point is `__call__`."""

    def __init__(self, config: SimulatorConfig | None = None, clock: Clock | None = None) -> None:
        from ledger_etl.simulator import admin, routes

        self.config = config or SimulatorConfig()
        self.clock = clock or Clock()
        from ledger_etl.simulator.synthetic import market_data

        self.market = market_data(self.config.world.seed, self.config.extra_markets)
        self.world = World(self.config.world, self.market)
        self.sessions = SessionStore(
            self.clock, self.config.session_idle_seconds, self.config.session_max_age_seconds
        )
        self.user_limiter = SlidingWindowLimiter(self.clock, self.config.rate_limit_per_second)
        self.login_limiter = SlidingWindowLimiter(self.clock, self.config.login_rate_per_second)
        self.faults = FaultPlan(self.config.faults)
        self.decryptor = PasswordDecryptor()
        self.stats = Stats(log=deque(maxlen=self.config.request_log_size))
        self.preferences: dict[str, Any] | None = None
        self.watchlists = WatchlistBook()  # changed by POST/PUT/DELETE /watchlists
        self._api_routes = routes.ROUTES
        self._admin_routes = admin.ROUTES
        from ledger_etl.simulator.stream import StreamHub

        self.stream = StreamHub(self)

    def start_warm_up(self) -> threading.Thread:
        """Compute, on a background thread, the balances and days a first login needs, so the
        login does not (see `simulator.balances`)."""

        def run() -> None:
            began = time.perf_counter()
            try:
                self.world.warm_up(self.clock.now())
            except Exception:  # the request path computes whatever is missing itself
                log.exception("simulator warm-up failed")
                return
            # A heavy world leaves millions of objects in the day cache; a full collection
            # walking them pauses whichever request happens to trigger it by a second or more.
            # They hold no reference cycles (eviction frees them), so keep the collector off them.
            gc.freeze()
            log.info(
                "simulator warm-up done in %.1f s (%d days generated)",
                time.perf_counter() - began,
                self.world.days_generated,
            )

        thread = threading.Thread(target=run, name="simulator-warm-up", daemon=True)
        thread.start()
        return thread

    # -- ASGI ---------------------------------------------------------------------------------
    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict]],
        send: Callable[[dict], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "websocket":
            await self.stream.serve(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        request = await self._read_request(scope, receive)
        if request is None:
            await _send(send, Reply(413, {"errorCode": "error.request.too-large"}))
            return
        raw_path = scope["path"]
        if raw_path.startswith(API_PREFIX + "/") or raw_path == API_PREFIX:
            request.path = raw_path[len(API_PREFIX) :].rstrip("/") or "/"
            await self._api(request, send)
        elif raw_path.startswith(ADMIN_PREFIX + "/"):
            request.path = raw_path[len(ADMIN_PREFIX) :].rstrip("/") or "/"
            reply = await asyncio.to_thread(self._dispatch, self._admin_routes, request)
            await _send(send, reply)
        else:
            await _send(send, Reply(404, {"errorCode": "error.not-found.path"}))

    async def _read_request(
        self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict]]
    ) -> Request | None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_BODY:
                return None
            if not message.get("more_body"):
                break
        query = scope.get("query_string", b"").decode("latin-1")
        params: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            params.setdefault(key, value)
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        client = scope.get("client") or ("unknown", 0)
        return Request(
            scope["method"].upper(), scope["path"], params, headers, body, f"{client[0]}",
            query=unquote(query), raw_query=query,
        )  # fmt: skip

    async def _api(self, request: Request, send: Callable[[dict], Awaitable[None]]) -> None:
        started = time.perf_counter()
        decision = self.faults.decide(request.method, request.path, request.query)
        # The rate limit counts a request when it arrives; a slow answer (the latency fault)
        # is slow after that. Answers a fault makes up are not counted.
        made_up = bool(decision.nested or decision.respond or decision.drop)
        within_rate = made_up or self._within_rate(request)
        if decision.latency:
            await asyncio.sleep(decision.latency)
        if decision.expire_session and request.headers.get("cst"):
            self.sessions.end(request.headers["cst"])
        if decision.nested:
            status, depth = decision.nested
            self._record(request, status, decision, started)
            await _send_raw(send, status, b"[" * depth)
            return
        if decision.respond or decision.drop:
            reply = Reply(*decision.respond, {}) if decision.respond else Reply(200, {})
            if decision.respond:
                code = decision.respond[1]
                if decision.echo:
                    query = f"?{request.raw_query}" if request.raw_query else ""
                    target = API_PREFIX + request.path + query
                    echoed = echo_text(request.method, target, request.headers, request.body)
                    code = f"{code}: {echoed}"
                reply.body = {"errorCode": code}
            self._record(request, reply.status, decision, started)
            if decision.drop:
                await _send_dropped(send)
            else:
                await _send(send, reply)
            return
        if not within_rate:
            reply = Reply(429, {"errorCode": "error.too-many.requests"})
            with self.stats.lock:
                self.stats.throttled += 1
        else:
            reply = await asyncio.to_thread(self._dispatch, self._api_routes, request)
        if request.session is not None and reply.status != 401:
            reply.headers.setdefault("CST", request.session.cst)
            reply.headers.setdefault("X-SECURITY-TOKEN", request.session.security_token)
        self._record(request, reply.status, decision, started)
        if decision.body and reply.status == 200:
            await _send_corrupt(send, reply, decision.body)
        else:
            await _send(send, reply)

    def _within_rate(self, request: Request) -> bool:
        cst = request.headers.get("cst")
        if request.method == "POST" and request.path == "/session":
            digest = hashlib.sha256(request.headers.get("x-cap-api-key", "").encode())
            if not self.login_limiter.allow("key:" + digest.hexdigest()):
                return False
            return self.user_limiter.allow("user:" + self.world.client_id)
        if cst:
            return self.user_limiter.allow("user:" + self.world.client_id)
        return self.user_limiter.allow("addr:" + request.client)

    def _dispatch(self, table: dict[tuple[str, str], Handler], request: Request) -> Reply:
        handler, path_args = _route(table, request.method, request.path)
        if handler is None:
            status, code = path_args.get("_status", (404, "error.not-found.path"))
            return Reply(status, {"errorCode": code})
        request.params.update({f"_path_{k}": v for k, v in path_args.items()})
        try:
            return handler(self, request)
        except ApiError as exc:
            return Reply(exc.status, {"errorCode": exc.error_code})
        except Exception:  # a simulator bug must not take the server down
            log.exception("simulator handler failed for %s %s", request.method, request.path)
            return Reply(500, {"errorCode": "error.internal"})

    def _record(
        self, request: Request, status: int, decision: FaultDecision, started: float
    ) -> None:
        now = self.clock.timestamp()
        entry = {
            "t": now,
            # when the request arrived (what the rate limit counts), on the same clock
            "arrived": now - (time.perf_counter() - started),
            "method": request.method,
            "path": request.path,
            "params": {k: v for k, v in request.params.items() if not k.startswith("_path_")},
            "status": status,
            "faults": decision.fired,
            "ms": round((time.perf_counter() - started) * 1000, 1),
        }
        with self.stats.lock:
            self.stats.by_path[request.path] += 1
            self.stats.by_status[status] += 1
            if decision.fired:
                self.stats.faults_fired += 1
            if request.method == "POST" and request.path == "/session" and status == 200:
                self.stats.logins += 1
            self.stats.log.append(entry)


def _route(
    table: dict[tuple[str, str], Handler], method: str, path: str
) -> tuple[Handler | None, dict[str, Any]]:
    parts = path.strip("/").split("/") if path != "/" else []
    allowed = False
    for (m, pattern), handler in table.items():
        pattern_parts = pattern.strip("/").split("/") if pattern != "/" else []
        if len(pattern_parts) != len(parts):
            continue
        args: dict[str, Any] = {}
        for want, got in zip(pattern_parts, parts, strict=True):
            if want.startswith("{"):
                if not got:
                    break
                args[want[1:-1]] = got
            elif want != got:
                break
        else:
            if m == method:
                return handler, args
            allowed = True
    if allowed:
        return None, {"_status": (405, "error.method.not-allowed")}
    return None, {}


async def _send(send: Callable[[dict], Awaitable[None]], reply: Reply) -> None:
    body = encode_body(reply.body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_raw(send: Callable[[dict], Awaitable[None]], status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_corrupt(send: Callable[[dict], Awaitable[None]], reply: Reply, kind: str) -> None:
    if kind == "html":
        body, ctype = HTML_BODY, b"text/html"
    else:
        full = encode_body(reply.body)
        body, ctype = full[: max(1, len(full) // 2)], b"application/json"
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_dropped(send: Callable[[dict], Awaitable[None]]) -> None:
    """Start a 200 that promises a body and close the connection halfway through it."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"transactions": [', "more_body": True})
    # Returning now leaves the response incomplete; the server closes the connection.
