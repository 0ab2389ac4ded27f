"""The price stream: a WebSocket at `/connect` on the simulator's own server (reference §11).

Every client message is an envelope `{destination, correlationId, cst, securityToken, payload}`;
the tokens are the REST session's and each message counts as a use of it. Replies echo the
destination and the correlationId (as a string, whether it came as an integer or a string).

A connection ticks every `stream_tick_seconds` of real time. Each tick first sends one quote per
subscribed market that is open at the simulated now, then the OHLC events (bid and ask
separately) of every subscribed bar that closed since the last tick. Quotes and bars come from the
same `PriceSeries` as GET /prices, so `/_sim/truth/bars` is their ground truth. Because quotes of
a tick precede its bars, a client that also takes quotes for an epic sees the server's clock pass
a bar's close before the bar's event arrives.

Limits and errors: at most `stream_max_epics` distinct epics per connection across quote and OHLC
subscriptions (`error.too-many.epics`, an inferred code: the vendor states the limit, not the
error); an unknown epic is acknowledged as `NOT_FOUND` (ack values other than PROCESSED are
undocumented); when the REST session dies the stream sends one error frame
(`error.invalid.session.token`, destination `session`) and goes quiet; `PUT /session` to another
account closes every stream of that session (code 1008, reason "account switched").
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ledger_etl.simulator.errors import ApiError
from ledger_etl.simulator.prices import RESOLUTIONS, align_down
from ledger_etl.simulator.stream_bars import BAR_TYPES, PRICE_TYPES, ohlc_event, side_bar

if TYPE_CHECKING:
    from ledger_etl.simulator.app import Simulator

log = logging.getLogger("ledger_etl.simulator.stream")
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
CATCH_UP_BARS = 5  # after a clock jump, only the last closed bar is sent, never a backlog


class StreamHub:
    """The open stream connections of one simulator, for operators and for PUT /session."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._lock = threading.Lock()
        self._connections: set[StreamConnection] = set()
        self.frames_sent = 0
        self.connections_opened = 0

    async def serve(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        first = await receive()
        if first.get("type") != "websocket.connect":
            return
        if scope.get("path", "").rstrip("/") != "/connect":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})
        connection = StreamConnection(self.sim, self, receive, send)
        with self._lock:
            self._connections.add(connection)
            self.connections_opened += 1
        try:
            await connection.run()
        finally:
            with self._lock:
                self._connections.discard(connection)

    def account_switched(self, cst: str) -> int:
        """Close the streams of this session (called from a request thread)."""
        with self._lock:
            targets = [c for c in self._connections if c.cst == cst]
        for connection in targets:
            connection.loop.call_soon_threadsafe(connection.close, 1008, "account switched")
        return len(targets)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            connections = list(self._connections)
        return {
            "connections": len(connections),
            "connections_opened": self.connections_opened,
            "frames_sent": self.frames_sent,
            "epics": sorted({e for c in connections for e in c.epics()}),
        }


class StreamConnection:
    def __init__(self, sim: Simulator, hub: StreamHub, receive: Receive, send: Send) -> None:
        self.sim, self.hub = sim, hub
        self._receive, self._send = receive, send
        self.loop = asyncio.get_running_loop()
        self.cst: str | None = None
        self._token: str | None = None
        self.quotes: set[str] = set()
        self.ohlc: dict[tuple[str, str, str], int] = {}  # (epic, resolution, type) → next bar
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._done = asyncio.Event()
        self._close: tuple[int, str] | None = None
        self._disconnected = False
        self._stalled_until: float | None = None
        self._quiet = False  # after a session error: nothing more until a valid message

    def epics(self) -> set[str]:
        return self.quotes | {epic for epic, _, _ in self.ohlc}

    async def run(self) -> None:
        tasks = [asyncio.create_task(job()) for job in (self._read, self._pump, self._write)]
        await self._done.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not self._disconnected:
            code, reason = self._close or (1000, "")
            try:
                await self._send({"type": "websocket.close", "code": code, "reason": reason})
            except Exception:  # the peer is already gone
                log.debug("close after disconnect", exc_info=True)

    def close(self, code: int, reason: str) -> None:
        if self._close is None:
            self._close = (code, reason)
        self._done.set()

    # -- the three tasks --------------------------------------------------------------------
    async def _read(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                self._disconnected = True
                self._done.set()
                return
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", "replace")
            self._handle(text)

    async def _write(self) -> None:
        while True:
            text = await self._queue.get()
            await self._send({"type": "websocket.send", "text": text})

    async def _pump(self) -> None:
        while True:
            await asyncio.sleep(self.sim.config.stream_tick_seconds)
            self._tick()

    # -- outgoing frames --------------------------------------------------------------------
    def _emit(self, frame: dict[str, Any], epic: str | None = None) -> list[str]:
        """Queue a frame through the fault plan; returns the kinds of the faults that fired."""
        if self._done.is_set():
            return []
        if self._stalled_until is not None:
            if self.loop.time() < self._stalled_until:
                return []
            self._stalled_until = None
        fired = self.sim.faults.stream.decide(frame["destination"], epic)
        kinds = [rule.kind for rule in fired]
        for rule in fired:
            if rule.kind == "drop":
                self.close(1011, "dropped")
                return kinds
            if rule.kind == "slow_consumer":
                self.close(1008, "slow consumer")
                return kinds
            if rule.kind == "stall":
                seconds = 1e12 if rule.seconds is None else rule.seconds
                self._stalled_until = self.loop.time() + seconds
                return kinds
        if "skip_ohlc" in kinds:
            return kinds
        text = json.dumps(frame, separators=(",", ":"))
        if "malformed" in kinds:
            text = text[: len(text) // 2]
        copies = 2 if "duplicate" in kinds else 1
        if self._queue.qsize() + copies > self.sim.config.stream_queue_size:
            self.close(1008, "slow consumer")
            return kinds
        for _ in range(copies):
            self._queue.put_nowait(text)
        self.hub.frames_sent += copies
        return kinds

    def _reply(self, destination: Any, cid: Any, payload: dict[str, Any]) -> None:
        frame: dict[str, Any] = {"status": "OK", "destination": destination}
        if cid is not None:
            frame["correlationId"] = str(cid)
        frame["payload"] = payload
        self._emit(frame)

    def _error(self, destination: Any, cid: Any, code: str) -> None:
        frame: dict[str, Any] = {"status": "ERROR", "destination": destination}
        if cid is not None:
            frame["correlationId"] = str(cid)
        if self.sim.config.stream_error_code_at == "top":
            frame["errorCode"] = code
            frame["payload"] = {}
        else:
            frame["payload"] = {"errorCode": code}
        self._emit(frame)

    # -- the tick ---------------------------------------------------------------------------
    def _tick(self) -> None:
        if self._quiet or not (self.quotes or self.ohlc):
            return
        if not self.sim.sessions.is_valid(self.cst, self._token):
            self._error("session", None, "error.invalid.session.token")
            self._quiet = True
            return
        now = self.sim.clock.timestamp()
        now_s = int(now)
        for epic in sorted(self.quotes):
            series = self.sim.market.series(epic)
            if not series.hours.is_open(now_s):
                continue
            mid = series.mid_ticks(now_s)
            payload = {
                "epic": epic, "product": "CFD",
                "bid": series.to_float(series.bid_ticks(mid)), "bidQty": 1000000.0,
                "ofr": series.to_float(series.ask_ticks(mid)), "ofrQty": 1000000.0,
                "timestamp": int(now * 1000),
            }  # fmt: skip
            self._emit({"status": "OK", "destination": "quote", "payload": payload}, epic)
        for key in sorted(self.ohlc):
            self._send_closed_bars(key, now_s)

    def _send_closed_bars(self, key: tuple[str, str, str], now_s: int) -> None:
        epic, resolution, bar_type = key
        seconds = RESOLUTIONS[resolution]
        forming = align_down(now_s, seconds)
        start = max(self.ohlc[key], forming - CATCH_UP_BARS * seconds)
        series = self.sim.market.series(epic)
        while start < forming:
            for price_type in PRICE_TYPES:
                bar = side_bar(series, start, resolution, bar_type, price_type, now_s)
                if bar is None:
                    continue
                fired = self._emit(ohlc_event(epic, resolution, bar_type, price_type, bar), epic)
                if "early_ohlc" in fired:  # the forming bar, cut at now
                    early = side_bar(series, forming, resolution, bar_type, price_type, now_s)
                    if early is not None:
                        self._emit(ohlc_event(epic, resolution, bar_type, price_type, early))
            start += seconds
        self.ohlc[key] = forming

    # -- requests ---------------------------------------------------------------------------
    def _handle(self, text: str) -> None:
        try:
            message = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            self._error(None, None, "error.malformed.message")
            return
        if not isinstance(message, dict):
            self._error(None, None, "error.malformed.message")
            return
        destination, cid = message.get("destination"), message.get("correlationId")
        if isinstance(cid, bool) or not isinstance(cid, int | str | None):
            self._error(destination, None, "error.invalid.correlationId")
            return
        try:
            self.sim.sessions.authenticate(message.get("cst"), message.get("securityToken"))
        except ApiError as exc:
            self._error(destination, cid, exc.error_code)
            return
        self.cst, self._token = message["cst"], message["securityToken"]
        self._quiet = False
        payload = message.get("payload") or {}
        handler = _HANDLERS.get(destination) if isinstance(destination, str) else None
        if handler is None:
            self._error(destination, cid, "error.invalid.destination")
            return
        if not isinstance(payload, dict):
            self._error(destination, cid, "error.invalid.payload")
            return
        try:
            self._reply(destination, cid, handler(self, payload))
        except ApiError as exc:
            self._error(destination, cid, exc.error_code)

    def _known(self, epics: list[str]) -> tuple[list[str], dict[str, str]]:
        known, answers = [], {}
        for epic in epics:
            try:
                self.sim.market.series(epic)
            except ApiError:
                answers[epic] = "NOT_FOUND"
            else:
                known.append(epic)
        return known, answers

    def _check_limit(self, adding: set[str]) -> None:
        if len(self.epics() | adding) > self.sim.config.stream_max_epics:
            raise ApiError(400, "error.too-many.epics")


def _epics(payload: dict[str, Any]) -> list[str]:
    epics = payload.get("epics")
    if not isinstance(epics, list) or not epics or not all(isinstance(e, str) for e in epics):
        raise ApiError(400, "error.null.epic")
    return list(dict.fromkeys(epics))


def _list_of(payload: dict[str, Any], key: str, allowed: tuple[str, ...], code: str) -> list[str]:
    values = payload[key]
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or not values or any(v not in allowed for v in values):
        raise ApiError(400, code)
    return list(dict.fromkeys(values))


def _ping(conn: StreamConnection, payload: dict[str, Any]) -> dict[str, Any]:
    return {}


def _quotes_subscribe(conn: StreamConnection, payload: dict[str, Any]) -> dict[str, Any]:
    known, answers = conn._known(_epics(payload))
    conn._check_limit(set(known))
    for epic in known:
        conn.quotes.add(epic)
        answers[epic] = "PROCESSED"
    return {"subscriptions": answers}


def _quotes_unsubscribe(conn: StreamConnection, payload: dict[str, Any]) -> dict[str, Any]:
    known, answers = conn._known(_epics(payload))
    for epic in known:
        conn.quotes.discard(epic)
        answers[epic] = "PROCESSED"
    return {"subscriptions": answers}


def _ohlc_subscribe(conn: StreamConnection, payload: dict[str, Any]) -> dict[str, Any]:
    epics = _epics(payload)
    resolutions = ["MINUTE"]
    if "resolutions" in payload:
        resolutions = _list_of(
            payload, "resolutions", tuple(RESOLUTIONS), "error.invalid.resolution"
        )
    bar_type = payload.get("type", "classic")
    if bar_type not in BAR_TYPES:
        raise ApiError(400, "error.invalid.type")
    known, unknown = conn._known(epics)
    conn._check_limit(set(known))
    now_s = int(conn.sim.clock.timestamp())
    answers = {f"{epic}:{r}:{bar_type}": "NOT_FOUND" for epic in unknown for r in resolutions}
    for epic in known:
        for resolution in resolutions:
            key = (epic, resolution, bar_type)
            conn.ohlc.setdefault(key, align_down(now_s, RESOLUTIONS[resolution]))
            answers[f"{epic}:{resolution}:{bar_type}"] = "PROCESSED"
    return {"subscriptions": answers}


def _ohlc_unsubscribe(conn: StreamConnection, payload: dict[str, Any]) -> dict[str, Any]:
    epics = set(_epics(payload))
    resolutions = tuple(RESOLUTIONS)
    if "resolutions" in payload:
        resolutions = tuple(
            _list_of(payload, "resolutions", tuple(RESOLUTIONS), "error.invalid.resolution")
        )
    types = BAR_TYPES
    if "types" in payload:
        types = tuple(_list_of(payload, "types", BAR_TYPES, "error.invalid.type"))
    answers = {}
    for key in [k for k in conn.ohlc if k[0] in epics and k[1] in resolutions and k[2] in types]:
        del conn.ohlc[key]
        answers[":".join(key)] = "PROCESSED"
    return {"subscriptions": answers}


_HANDLERS: dict[str, Callable[[StreamConnection, dict[str, Any]], dict[str, Any]]] = {
    "ping": _ping,
    "marketData.subscribe": _quotes_subscribe,
    "marketData.unsubscribe": _quotes_unsubscribe,
    "OHLCMarketData.subscribe": _ohlc_subscribe,
    "OHLCMarketData.unsubscribe": _ohlc_unsubscribe,
}
