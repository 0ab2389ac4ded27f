"""Faults of the price stream, scripted or random, in the style of the REST fault plan.

They sit in the same profile under `"stream"`:

```json
{"seed": 7, "stream": [
   {"kind": "drop", "destination": "quote", "nth": [500]},
   {"kind": "stall", "every": 4000, "seconds": 30},
   {"kind": "skip_ohlc", "probability": 0.01},
   {"kind": "early_ohlc", "nth": [3, 40]},
   {"kind": "duplicate", "destination": "ohlc.event", "every": 25},
   {"kind": "malformed", "nth": [77]},
   {"kind": "slow_consumer", "nth": [9000]}]}
```

A rule counts the outgoing frames whose `destination` matches (a regular expression; empty
matches all) and, if `epic` is given, whose payload is for that epic; it fires on the `nth`
matching frames (1-based), on `every` k-th, or with `probability`, after skipping `after`, at most
`times` times. Kinds, all acting on the frame that fired:
`drop` (the socket closes, code 1011, before the frame), `stall` (nothing more is sent, nothing
closes: for `seconds` real seconds, or for good when not given), `skip_ohlc` (an OHLC event is not
sent), `early_ohlc` (after an OHLC event, an event for the next bar, still forming, is sent too),
`duplicate` (the frame is sent twice), `malformed` (the frame is cut in half: not JSON),
`slow_consumer` (the server gives up on the client as too slow to read: close code 1008,
reason "slow consumer"; the same happens for real when the connection's send queue overflows).
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from ledger_etl.simulator.faults import FaultConfigError

STREAM_KINDS = (
    "drop",
    "stall",
    "skip_ohlc",
    "early_ohlc",
    "duplicate",
    "malformed",
    "slow_consumer",
)


@dataclass
class StreamRule:
    kind: str
    destination: str = ""
    epic: str | None = None
    nth: list[int] | None = None
    every: int | None = None
    probability: float | None = None
    after: int = 0
    times: int | None = None
    seconds: float | None = None
    matched: int = field(default=0, compare=False)
    fired: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in STREAM_KINDS:
            raise FaultConfigError(
                f"unknown stream fault kind {self.kind!r}; expected one of {STREAM_KINDS}"
            )
        if self.kind in ("skip_ohlc", "early_ohlc") and not self.destination:
            self.destination = "^ohlc\\.event$"
        try:
            self._pattern = re.compile(self.destination)
        except re.error as exc:
            raise FaultConfigError(f"bad destination pattern {self.destination!r}: {exc}") from None
        if self.every is not None and self.every < 1:
            raise FaultConfigError("every must be at least 1")
        if self.probability is not None and not 0 <= self.probability <= 1:
            raise FaultConfigError("probability must be between 0 and 1")
        if self.seconds is not None and self.seconds < 0:
            raise FaultConfigError("seconds must not be negative")

    def matches(self, destination: str, epic: str | None) -> bool:
        if self.epic is not None and self.epic != epic:
            return False
        return bool(self._pattern.search(destination))

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class StreamFaultPlan:
    """The stream rules of a fault profile; `decide` is called once per outgoing frame."""

    def __init__(self, raw: Any = None, seed: int = 0) -> None:
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise FaultConfigError("stream must be a list of rules")
        rules = []
        for item in raw:
            if not isinstance(item, dict):
                raise FaultConfigError("each stream rule is a JSON object")
            try:
                rules.append(
                    StreamRule(**{k: v for k, v in item.items() if k not in ("matched", "fired")})
                )
            except TypeError as exc:
                raise FaultConfigError(f"bad stream rule {item!r}: {exc}") from None
        self.rules = rules
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def decide(self, destination: str, epic: str | None) -> list[StreamRule]:
        """The rules that fire on this frame (usually none)."""
        if not self.rules:
            return []
        fired = []
        with self._lock:
            for rule in self.rules:
                if not rule.matches(destination, epic):
                    continue
                rule.matched += 1
                if self._fires(rule):
                    rule.fired += 1
                    fired.append(rule)
        return fired

    def _fires(self, rule: StreamRule) -> bool:
        if rule.times is not None and rule.fired >= rule.times:
            return False
        count = rule.matched - rule.after
        if count < 1:
            return False
        if rule.nth is not None:
            return count in rule.nth
        if rule.every is not None:
            return count % rule.every == 0
        if rule.probability is not None:
            return self._rng.random() < rule.probability
        return True

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.public() for r in self.rules]
