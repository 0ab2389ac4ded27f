"""Stream frames → status counts, quote callbacks and bar updates (no I/O, no connection).

Numbers are parsed as their exact text (`parse_float=str`): quotes go on as text to the quote
files, OHLC values become Decimal. A bar update is final only when both its bid and ask events
were final (see `market.stream`); a malformed or refused frame is logged and counted, never fatal.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ledger_etl.market.bars import RESOLUTIONS, BarError, BarUpdate, from_event

log = logging.getLogger("ledger_etl.market.stream")
SESSION_EXPIRED = "error.invalid.session.token"
# One decoder for every frame (`json.loads` with an option builds a new one per call); numbers
# with a fraction or exponent stay their exact text.
_DECODER = json.JSONDecoder(parse_float=str)
_decode = _DECODER.raw_decode


@dataclass
class StreamStatus:
    connections: int = 0
    messages: int = 0
    quotes: int = 0
    events: int = 0
    reconnects: int = 0
    relogins: int = 0
    backfilled_bars: int = 0
    rejected: int = 0
    rejected_epics: set[str] = field(default_factory=set)
    last_message_monotonic: float | None = None
    started: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, Any]:
        age = None
        if self.last_message_monotonic is not None:
            age = round(time.monotonic() - self.last_message_monotonic, 3)
        elapsed = max(1e-9, time.monotonic() - self.started)
        return {
            "connections": self.connections, "messages": self.messages,
            "messages_per_s": round(self.messages / elapsed, 1), "last_message_age_s": age,
            "reconnects": self.reconnects, "relogins": self.relogins,
            "backfilled_bars": self.backfilled_bars, "rejected": self.rejected,
            "rejected_epics": sorted(self.rejected_epics), "quotes": self.quotes,
            "events": self.events, "uptime_s": round(elapsed, 1),
        }  # fmt: skip


def _decimal(value: Any) -> Any:
    """A JSON number kept as text (or an int) → Decimal; anything else is left for the check."""
    if isinstance(value, str):
        try:
            return Decimal(value)
        except ArithmeticError:
            return value
    return value


_NUMBER_TYPES = (str, int)  # a JSON number: its exact text, or an int


class _SessionExpired(Exception):
    def __init__(self, generation: int) -> None:
        self.generation = generation


class SessionExpired(Exception):
    """The stream said the session's tokens are no longer valid."""


@dataclass
class _Pending:
    """The halves of one bar seen so far on the stream."""

    bid: BarUpdate | None = None
    ask: BarUpdate | None = None


class FrameHandler:
    """Turns frames into counts, quotes and bar updates; `take_updates` hands the updates over."""

    def __init__(
        self, status: StreamStatus, on_quote: Callable[[str, int, str, str], None] | None
    ) -> None:
        self.status = status
        self._on_quote = on_quote
        self._pending: dict[tuple[str, str, str, datetime], _Pending] = {}
        self._updates: list[BarUpdate] = []
        self.lock = threading.Lock()  # the update list, shared with the storing thread

    def take_updates(self) -> list[BarUpdate]:
        """Call with `lock` held."""
        updates, self._updates = self._updates, []
        if len(self._pending) > 10_000:  # halves whose twin never came: REST has them
            self._pending.clear()
        return updates

    def give_back(self, updates: list[BarUpdate]) -> None:
        """Updates that could not be stored, first in line for the next attempt (lock held)."""
        self._updates[:0] = updates

    def handle(self, text: str | bytes, server_ms: int) -> tuple[str, int]:
        """(kind, server ms of a quote); raises SessionExpired on that error frame."""
        try:
            if type(text) is not str:
                text = bytes(text).decode("utf-8")
            try:
                frame, end = _decode(text)
            except ValueError:
                end = -1
            if end != len(text):  # whitespace around the value, or worse: the full check
                frame = _DECODER.decode(text)
        except (ValueError, RecursionError, TypeError):
            return self._reject("malformed frame (not JSON)", text)
        if type(frame) is not dict:
            return self._reject("frame is not an object", text)
        payload = frame.get("payload")
        destination = frame.get("destination")
        if destination == "quote" and type(payload) is dict and frame.get("status") != "ERROR":
            # the hot path: one quote, checked inline
            try:
                stamp, epic = payload["timestamp"], payload["epic"]
                bid, ask = payload["bid"], payload["ofr"]
            except KeyError:
                return self._reject("quote without epic, timestamp, bid or ofr", text)
            if (
                type(stamp) is not int
                or type(epic) is not str
                or type(bid) not in _NUMBER_TYPES
                or type(ask) not in _NUMBER_TYPES
            ):
                return self._reject("quote without epic, timestamp, bid or ofr", text)
            self.status.quotes += 1
            add = self._on_quote
            if add is not None:
                if type(bid) is str and type(ask) is str:
                    add(epic, stamp, bid, ask)
                else:
                    add(epic, stamp, str(bid), str(ask))
            return ("quote", stamp)
        if frame.get("status") == "ERROR":
            code = frame.get("errorCode") or (payload or {}).get("errorCode")
            if code == SESSION_EXPIRED:
                raise SessionExpired
            return self._reject(f"error frame for {destination}: {code}", "")
        if not isinstance(payload, dict):
            return self._reject("frame without a payload object", text)
        if destination == "ohlc.event":
            return self._event(payload, server_ms, text)
        if isinstance(destination, str) and destination.endswith("subscribe"):
            for name, answer in (payload.get("subscriptions") or {}).items():
                if answer != "PROCESSED":
                    self.status.rejected_epics.add(str(name).split(":")[0])
                    log.warning("subscription %s refused: %s", name, answer)
        return ("other", 0)

    def _reject(self, reason: str, text: str | bytes) -> tuple[str, int]:
        self.status.rejected += 1
        log.warning("stream frame rejected: %s (%d bytes)", reason, len(text))
        return ("rejected", 0)

    def _event(self, payload: dict[str, Any], server_ms: int, text: str | bytes) -> tuple[str, int]:
        stamp, resolution = payload.get("t"), payload.get("resolution")
        closed = (
            isinstance(stamp, int)
            and resolution in RESOLUTIONS
            and server_ms >= stamp + RESOLUTIONS[resolution] * 1000
        )
        try:
            numbers = {k: _decimal(payload.get(k)) for k in "ohlc"}
            update = from_event(payload | numbers, final=bool(closed))
        except BarError as exc:
            return self._reject(str(exc), text)
        self.status.events += 1
        pending = self._pending.setdefault(update.key, _Pending())
        side = "bid" if update.bid is not None else "ask"
        setattr(pending, side, update)
        both = pending.bid is not None and pending.ask is not None
        final = both and pending.bid.final and pending.ask.final  # type: ignore[union-attr]
        with self.lock:
            self._updates.append(
            BarUpdate(update.epic, update.resolution, update.bar_type, update.t,
                      pending.bid.bid if pending.bid else None,
                      pending.ask.ask if pending.ask else None, "stream", bool(final))
            )  # fmt: skip
        if final:
            del self._pending[update.key]
        return ("event", 0)
