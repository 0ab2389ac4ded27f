"""The price stream client: WebSocket quotes and OHLC bars into the bar store, gaps over REST.

Built on the `websockets` asyncio client (already a dependency of the simulator's server; it has
a cancel-safe `recv`, so a watchdog is a plain timeout). How it keeps bars exact:
- epics are spread over connections of at most 40 (the broker's limit per connection); each
  connection takes quotes and MINUTE.. OHLC for its epics, and pings well within 10 minutes;
- quotes carry the server's clock; an OHLC event is final only if, on the same connection, a
  quote stamped at or after the bar's close arrived before it (an event sent early is not) and
  both bid and ask came that way; otherwise the bar is stored provisional;
- a watchdog per connection and per subscription kind: no quote for `quote_stale_s` → reconnect;
  no OHLC event for `ohlc_stale_s` while quotes flow → resubscribe OHLC, then reconnect;
- an invalid session error frame → re-login (once for all connections), reconnect, resubscribe;
  every reconnect waits with exponential backoff and full jitter;
- a reconciler asks the bar store for gaps (bars neither final nor covered by REST) that closed
  more than `grace_s` server seconds ago, and backfills them over REST, after every reconnect and
  on a timer; REST supersedes stream values.
Heikin-ashi bars are not requested: REST serves only classic bars, so only classic bars can be
backfilled and checked; heikin-ashi is derived from final classic bars on read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from ledger_etl.capital.client import CapitalClient
from ledger_etl.intervals import Window
from ledger_etl.market.backfill import align_down, backfill
from ledger_etl.market.bars import RESOLUTIONS, store_updates
from ledger_etl.market.frames import FrameHandler, SessionExpired, StreamStatus
from ledger_etl.market.hours import OpeningHours
from ledger_etl.market.quotes import QuoteFiles

log = logging.getLogger("ledger_etl.market.stream")
MAX_EPICS_PER_CONNECTION = 40


class StreamInputError(ValueError):
    """A stream request that cannot be made (unknown resolution, no epics)."""


@dataclass
class StreamOptions:
    epics: list[str]
    resolutions: list[str] = field(default_factory=lambda: ["MINUTE"])
    max_epics: int = MAX_EPICS_PER_CONNECTION
    ping_s: float = 60.0  # the broker wants one at least every 10 minutes
    quote_stale_s: float = 30.0
    ohlc_stale_s: float = 150.0
    reconcile_s: float = 5.0
    grace_s: float = 60.0  # server seconds after a bar's close before REST is asked for it
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    flush_s: float = 0.5
    final_pass_s: float = 60.0  # how long the last backfill pass may take after a stop

    def __post_init__(self) -> None:
        if not self.epics:
            raise StreamInputError("no epics to stream")
        bad = [r for r in self.resolutions if r not in RESOLUTIONS]
        if bad:
            raise StreamInputError(
                f"unknown resolutions {bad}; expected some of {list(RESOLUTIONS)}"
            )
        self.epics = list(dict.fromkeys(self.epics))


class _SessionExpired(Exception):
    def __init__(self, generation: int) -> None:
        self.generation = generation


class _Stale(Exception):
    pass


class BarStream:
    def __init__(
        self,
        client: CapitalClient,
        engine: Engine,
        options: StreamOptions,
        *,
        on_quote: Callable[[str, int, str, str], None] | None = None,
        quote_files: QuoteFiles | None = None,
        rotate_s: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        self.client, self.engine, self.options = client, engine, options
        self.status = StreamStatus()
        self._on_quote = on_quote
        self.quote_files = quote_files
        if quote_files is not None and on_quote is None:
            self._on_quote = quote_files.add
        self._rotate_s = rotate_s
        self._random = rng or random.Random()
        self._stop = asyncio.Event()
        self._reconcile_now = asyncio.Event()
        self._relogin_lock = asyncio.Lock()
        self._start: datetime | None = None
        self._hours: dict[str, OpeningHours] = {}
        self._server_clock: tuple[datetime, float] | None = None  # (server time, monotonic)
        self.frames = FrameHandler(self.status, self._on_quote)
        self._lock = self.frames.lock  # the update buffer and the store, across threads

    def chunks(self) -> list[list[str]]:
        size = self.options.max_epics
        return [self.options.epics[i : i + size] for i in range(0, len(self.options.epics), size)]

    def stop(self) -> None:
        self._stop.set()

    async def run(
        self, duration: float | None = None, backfill_from: datetime | None = None
    ) -> None:
        """Stream until `stop()` or `duration` seconds; then flush and backfill what closed."""
        server_now = await asyncio.to_thread(self.client.server_time)
        self._server_clock = (server_now, time.monotonic())
        self._start = backfill_from or align_down(server_now, "MINUTE")
        await asyncio.to_thread(self._load_hours)
        tasks = [asyncio.create_task(self._connection(chunk)) for chunk in self.chunks()]
        tasks += [asyncio.create_task(self._flusher()), asyncio.create_task(self._reconciler())]
        try:
            if duration is None:
                await self._stop.wait()
            else:
                try:
                    await asyncio.wait_for(self._stop.wait(), duration)
                except TimeoutError:
                    pass
        finally:
            self._stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.to_thread(self._flush)
            try:  # what closed while the stream ran, once more over REST (bounded)
                await asyncio.wait_for(asyncio.to_thread(self.reconcile), self.options.final_pass_s)
            except Exception as exc:
                log.warning("final backfill pass incomplete: %s", exc)
            if self.quote_files is not None:
                await asyncio.to_thread(self.quote_files.rotate, self.quote_files.take())

    def _load_hours(self) -> None:
        """Opening hours per epic (GET /markets/{epic}); unknown ones count as always open."""
        for epic in self.options.epics:
            try:
                body = self.client.request("GET", f"/markets/{epic}").body
                self._hours[epic] = OpeningHours((body.get("instrument") or {}).get("openingHours"))
            except Exception as exc:  # the stream's own acknowledgement reports unknown epics
                log.info("no opening hours for %s: %s", epic, exc)

    def _any_open(self, epics: list[str], within_s: float) -> bool:
        """Whether a market of `epics` was open at some point of the last `within_s` seconds
        (server time); silence from a connection whose markets are all shut is no fault."""
        if self._server_clock is None:
            return True
        server, mono = self._server_clock
        now = server + timedelta(seconds=time.monotonic() - mono)
        probes = [now - timedelta(seconds=within_s * k / 4) for k in range(5)]
        return any(
            self._hours.get(epic) is None or self._hours[epic].is_open(t)
            for epic in epics
            for t in probes
        )

    # -- connections ------------------------------------------------------------------------
    async def _connection(self, epics: list[str]) -> None:
        failures = 0
        opened_before = False
        while not self._stop.is_set():
            tokens = await asyncio.to_thread(self.client.session_tokens)
            host = self.client.streaming_host
            if not host:
                raise StreamInputError("the session answer named no streamingHost")
            try:
                url = host.rstrip("/") + "/connect"
                async with connect(url, max_size=2**20, open_timeout=10, close_timeout=2) as ws:
                    self.status.connections += 1
                    if opened_before:
                        self.status.reconnects += 1
                        self._reconcile_now.set()
                    opened_before = True
                    try:
                        await self._session(ws, epics, tokens)
                        failures = 0
                    finally:
                        self.status.connections -= 1
            except _SessionExpired as expired:
                async with self._relogin_lock:
                    await self.client.relogin_async(expired.generation)
                self.status.relogins += 1
            except (ConnectionClosed, OSError, TimeoutError, _Stale, InvalidHandshake,
                    InvalidURI) as exc:  # fmt: skip
                log.info("stream connection for %d epics ended: %s", len(epics), exc)
            failures += 1
            if self._stop.is_set():
                return
            ceiling = min(self.options.backoff_cap_s, self.options.backoff_base_s * 2**failures)
            await asyncio.sleep(self._random.uniform(0, ceiling))

    async def _session(self, ws: ClientConnection, epics: list[str], tokens: Any) -> None:
        envelope = {"cst": tokens.headers()["CST"],
                    "securityToken": tokens.headers()["X-SECURITY-TOKEN"]}  # fmt: skip
        counter = iter(range(1, 1 << 62))

        async def request(destination: str, payload: dict[str, Any]) -> None:
            await ws.send(json.dumps({"destination": destination, "correlationId": next(counter),
                                      **envelope, "payload": payload}))  # fmt: skip

        await request("marketData.subscribe", {"epics": epics})
        ohlc = {"epics": epics, "resolutions": self.options.resolutions, "type": "classic"}
        await request("OHLCMarketData.subscribe", ohlc)
        server_ms = 0  # the server clock as this connection's quotes show it
        now = time.monotonic()
        last_quote = last_event = last_ping = now
        resubscribed = False
        while not self._stop.is_set():
            now = time.monotonic()
            if now - last_ping >= self.options.ping_s:
                await request("ping", {})
                last_ping = now
            if now - last_quote > self.options.quote_stale_s:
                if self._any_open(epics, self.options.quote_stale_s):
                    raise _Stale(f"no quote for {self.options.quote_stale_s} s")
                last_quote = now  # every market shut: silence is expected
            if now - last_event > self.options.ohlc_stale_s and not self._any_open(
                epics, self.options.ohlc_stale_s
            ):
                last_event = now
            if now - last_event > self.options.ohlc_stale_s:
                if resubscribed:
                    raise _Stale(f"no OHLC event for {self.options.ohlc_stale_s} s")
                await request("OHLCMarketData.unsubscribe", {"epics": epics})
                await request("OHLCMarketData.subscribe", ohlc)
                resubscribed, last_event = True, now
            try:
                text = await asyncio.wait_for(ws.recv(), timeout=0.25)
            except TimeoutError:
                continue
            self.status.messages += 1
            self.status.last_message_monotonic = time.monotonic()
            try:
                kind, value = self.frames.handle(text, server_ms)
            except SessionExpired:
                raise _SessionExpired(tokens.generation) from None
            if kind == "quote":
                server_ms = max(server_ms, value)
                last_quote = time.monotonic()
            elif kind == "event":
                last_event, resubscribed = time.monotonic(), False

    # -- storage and gaps -------------------------------------------------------------------
    def _flush(self) -> None:
        with self._lock:
            updates = self.frames.take_updates()
            if updates:
                try:
                    store_updates(self.engine, updates, datetime.now(UTC).replace(microsecond=0))
                except Exception:
                    self.frames.give_back(updates)  # kept for the next flush, never dropped
                    raise

    async def _flusher(self) -> None:
        rotated = time.monotonic()
        while True:
            await asyncio.sleep(self.options.flush_s)
            if self.quote_files is not None and time.monotonic() - rotated >= self._rotate_s:
                rotated = time.monotonic()
                taken = self.quote_files.take()
                try:
                    await asyncio.to_thread(self.quote_files.rotate, taken)
                except OSError as exc:
                    log.error("quote files not written: %s", exc)
            try:
                await asyncio.to_thread(self._flush)
            except Exception as exc:
                log.warning("flush failed, retried on the next one: %s", exc)

    async def _reconciler(self) -> None:
        self._reconcile_now.set()  # first pass at once: what closed while nothing streamed
        while True:
            try:
                await asyncio.wait_for(self._reconcile_now.wait(), self.options.reconcile_s)
            except TimeoutError:
                pass
            self._reconcile_now.clear()
            try:
                await asyncio.to_thread(self.reconcile)
            except Exception as exc:  # a failed pass is retried on the next one
                log.warning("backfill pass failed: %s", exc)

    def reconcile(self, until: datetime | None = None) -> int:
        """Backfill every gap from the stream's start up to `until` (default: server now less
        the grace period); returns the bars stored."""
        self._flush()
        assert self._start is not None
        server_now = self.client.server_time()
        self._server_clock = (server_now, time.monotonic())
        limit = until or server_now - timedelta(seconds=self.options.grace_s)
        stored = 0
        for epic in self.options.epics:
            if epic in self.status.rejected_epics:
                continue
            for resolution in self.options.resolutions:
                end = align_down(limit, resolution)
                if end <= self._start:
                    continue
                with self._lock:
                    report = backfill(self.client, self.engine, epic, resolution,
                                      Window(self._start, end), now=server_now)  # fmt: skip
                stored += report.bars
        self.status.backfilled_bars += stored
        return stored
