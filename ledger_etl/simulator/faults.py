"""Fault injection: the bad days of a broker API, scripted or random with a seed.

A fault profile is JSON (a file at start, or `/_sim/faults` at run time):

```json
{"seed": 7,
 "rules": [
   {"kind": "status", "status": 503, "path": "/history/transactions", "every": 5},
   {"kind": "throttle", "nth": [3, 4, 5]},
   {"kind": "drop", "path": "/history/activity", "probability": 0.1},
   {"kind": "latency", "seconds": 0.15},
   {"kind": "html", "path": "/history/", "nth": [2]},
   {"kind": "truncated_json", "path": "/history/", "nth": [7]},
   {"kind": "expire_session", "every": 50},
   {"kind": "echo", "status": 401, "method": "POST", "path": "^/session$"}],
 "truncate_above": 500,
 "late_arrival": [{"endpoint": "activity", "seconds": 61, "fraction": 1.0}]}
```

Rule kinds: `status` (answer `status` with `error_code` or a generic 5xx body), `throttle` (429
`error.too-many.requests`), `drop` (close the connection mid-response), `latency` (delay the
answer by `seconds`), `html` / `truncated_json` (a 200 whose body is an HTML page or JSON cut in
half), `expire_session` (the caller's session dies just before the request is authenticated),
`echo` (a hostile or debugging server: answer `status`, 500 unless given, with the request's
headers and body in the `errorCode` text: as sent, as JSON and percent-encoded), `nested` (answer
`status`, 500 unless given, 200 allowed, with a body of `depth` unclosed `[`, 100,000 unless
given: a parser that recurses per bracket overflows its stack).
A rule applies to requests whose method and path match (`path` is a regular expression searched in
the path under `/api/v1`; empty matches all) and, if `query` is given, whose percent-decoded query
string contains a match of that regular expression (`{"path": "^/history/", "query":
"from=2025-03-10T"}` singles out one history window, whatever order concurrent requests arrive in).
It fires on the `nth` matching requests (1-based), on `every` k-th one, or with `probability`,
after skipping the first `after`, at most `times` times.
`truncate_above: N` silently keeps only the newest N rows of a history answer. `late_arrival` makes
a `fraction` of an endpoint's rows visible only `seconds` after their timestamp.

`corrupt_rows` damages a `fraction` of the rows an endpoint answers with (chosen per row, the same
rows every time): `{"endpoint": "transactions", "kind": "bad_amount", "fraction": 0.02}`. Kinds:
`bad_amount`, `unknown_currency`, `missing_reference`, `missing_date`, `unknown_type`,
`long_note` (10,000 characters), `control_chars` (right-to-left override, bell, NUL),
`duplicate_reference` (a second row with the same reference and a different amount), and
`override`, which sets `fields` (dotted names reach into `details`) on the rows whose fields equal
`where` (or on a `fraction` of them without `where`):
`{"endpoint": "activity", "kind": "override", "where": {"dealId": "..."},
"fields": {"details.level": {"$number": "1E+1000000"}}}`. A `{"$number": text}` value is sent as
that JSON number literally (`NaN`, `Infinity` and `-Infinity` too, as some servers write them); a
lone surrogate is sent as its `\\udXXX` escape. A `{"$bytes": hex}` value is sent as a JSON
string of exactly those bytes, unescaped: `{"note": {"$bytes": "6f6bff"}}` puts a byte that is not
UTF-8 into one row, `{"note": {"$bytes": "610762"}}` a raw control character. `override` also
reaches the accounts of `GET /accounts` (endpoint `accounts`): `{"endpoint": "accounts", "kind":
"override", "where": {"accountId": "..."}, "fields": {"balance.balance": "NaN"}}`. Ground truth is
unaffected: it holds the rows as they should have been.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

KINDS = (
    "status",
    "throttle",
    "drop",
    "latency",
    "html",
    "truncated_json",
    "expire_session",
    "echo",
    "nested",
)
CORRUPTIONS = (
    "bad_amount",
    "unknown_currency",
    "missing_reference",
    "missing_date",
    "unknown_type",
    "long_note",
    "control_chars",
    "duplicate_reference",
)
OVERRIDE = "override"  # not a random corruption: it sets given fields on chosen rows
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|NaN|-?Infinity")
_RAW_MARK = "\ue000"  # brackets a raw number in the encoded text until it is spliced in
_BYTES_MARK = "\ue001"  # brackets the hex of raw string bytes until they are spliced in


@dataclass(frozen=True)
class RawNumber:
    """A JSON number sent exactly as written (`1E+1000000`, or a thousand digits)."""

    text: str


@dataclass(frozen=True)
class RawBytes:
    """A JSON string whose content is sent as these bytes, unescaped (not UTF-8, or control
    characters that JSON requires escaped): what a broken server encoder writes."""

    hex: str  # lower-case hex digits: kept as text so the profile reads back as JSON


def _wire_value(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            try:
                return RawBytes(bytes.fromhex(value["$bytes"]).hex())
            except (TypeError, ValueError):
                raise FaultConfigError("{'$bytes': ...} needs a text of hex digits") from None
        if set(value) == {"$number"}:
            text = value["$number"]
            if not isinstance(text, str) or not _JSON_NUMBER.fullmatch(text):
                raise FaultConfigError(f"{{'$number': ...}} needs a JSON number text, not {text!r}")
            return RawNumber(text)
        return {k: _wire_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire_value(v) for v in value]
    return value


class _BodyEncoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, RawNumber):
            return f"{_RAW_MARK}{o.text}{_RAW_MARK}"
        if isinstance(o, RawBytes):
            return f"{_BYTES_MARK}{o.hex}{_BYTES_MARK}"
        return super().default(o)


_RAW_NUMBER = re.compile(f'"{_RAW_MARK}([^"{_RAW_MARK}]*){_RAW_MARK}"')
_MARK_BYTES = _BYTES_MARK.encode("utf-8")
_RAW_BYTES = re.compile(b'"' + _MARK_BYTES + b"([0-9a-f]*)" + _MARK_BYTES + b'"')


def encode_body(body: Any) -> bytes:
    """A reply body as UTF-8 JSON; raw numbers spliced in, lone surrogates escaped."""
    try:
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, cls=_BodyEncoder)
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the wire carries it as an escape
        text = json.dumps(body, separators=(",", ":"), cls=_BodyEncoder)
        text = text.replace("\\ue000", _RAW_MARK).replace("\\ue001", _BYTES_MARK)
        data = text.encode("utf-8")
    if _RAW_MARK in text:
        data = _RAW_NUMBER.sub(r"\1", text).encode("utf-8")
    if _BYTES_MARK in text:
        data = _RAW_BYTES.sub(lambda m: b'"' + bytes.fromhex(m[1].decode()) + b'"', data)
    return data


ENDPOINTS = ("transactions", "activity")
ACCOUNTS = "accounts"  # `GET /accounts`: only `override` applies there


class FaultConfigError(ValueError):
    """A fault profile that cannot be understood; the message says which field."""


@dataclass
class FaultRule:
    kind: str
    path: str = ""
    query: str = ""  # regular expression searched in the percent-decoded query string
    method: str | None = None
    nth: list[int] | None = None
    every: int | None = None
    probability: float | None = None
    after: int = 0
    times: int | None = None
    status: int | None = None  # status: 503 unless given; echo: 500
    error_code: str | None = None
    seconds: float = 0.0
    depth: int = 100_000  # nested: how many `[` the body opens
    matched: int = field(default=0, compare=False)
    fired: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FaultConfigError(f"unknown fault kind {self.kind!r}; expected one of {KINDS}")
        try:
            self._pattern = re.compile(self.path)
        except re.error as exc:
            raise FaultConfigError(f"bad path pattern {self.path!r}: {exc}") from None
        try:
            self._query_pattern = re.compile(self.query)
        except re.error as exc:
            raise FaultConfigError(f"bad query pattern {self.query!r}: {exc}") from None
        if self.every is not None and self.every < 1:
            raise FaultConfigError("every must be at least 1")
        if self.probability is not None and not 0 <= self.probability <= 1:
            raise FaultConfigError("probability must be between 0 and 1")
        if self.status is None:
            self.status = 500 if self.kind in ("echo", "nested") else 503
        if self.kind == "nested" and not (
            isinstance(self.status, int) and (self.status == 200 or 400 <= self.status <= 599)
        ):
            raise FaultConfigError("nested: status must be 200 or an HTTP error status (400-599)")
        if self.kind == "nested" and not (isinstance(self.depth, int) and 1 <= self.depth <= 10**7):
            raise FaultConfigError("nested: depth must be a whole number from 1 to 10,000,000")
        if self.kind in ("status", "echo") and not (
            isinstance(self.status, int) and 400 <= self.status <= 599
        ):
            raise FaultConfigError("status must be an HTTP error status (400-599)")
        if self.seconds < 0:
            raise FaultConfigError("seconds must not be negative")

    def matches(self, method: str, path: str, query: str = "") -> bool:
        if self.method and self.method.upper() != method:
            return False
        if self.query and not self._query_pattern.search(query):
            return False
        return bool(self._pattern.search(path))

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: v for k, v in data.items() if v is not None}


@dataclass(frozen=True)
class LateArrival:
    endpoint: str
    seconds: float
    fraction: float = 1.0

    def __post_init__(self) -> None:
        if self.endpoint not in ENDPOINTS:
            raise FaultConfigError(f"late_arrival endpoint must be one of {ENDPOINTS}")
        if self.seconds < 0 or not 0 <= self.fraction <= 1:
            raise FaultConfigError("late_arrival needs seconds >= 0 and 0 <= fraction <= 1")

    def delay_for(self, row_key: str) -> float:
        """Deterministic per row: the same row is late in every run with the same profile."""
        if self.fraction >= 1:
            return self.seconds
        digest = hashlib.sha256(row_key.encode()).digest()
        return self.seconds if int.from_bytes(digest[:4], "big") / 2**32 < self.fraction else 0.0


@dataclass(frozen=True)
class Corruption:
    endpoint: str
    kind: str
    fraction: float = 0.05
    fields: dict[str, Any] | None = None  # override: what to set
    where: dict[str, Any] | None = None  # override: which rows (all fields equal)

    def __post_init__(self) -> None:
        if self.kind == OVERRIDE:
            if not isinstance(self.fields, dict) or not self.fields:
                raise FaultConfigError("an override corruption needs a non-empty fields object")
            if self.where is not None and not isinstance(self.where, dict):
                raise FaultConfigError("override where must be an object")
            object.__setattr__(self, "fields", _wire_value(self.fields))
        if self.endpoint not in ENDPOINTS and not (
            self.endpoint == ACCOUNTS and self.kind == OVERRIDE
        ):
            raise FaultConfigError(
                f"corrupt_rows endpoint must be one of {ENDPOINTS}, or {ACCOUNTS!r} for override"
            )
        if self.kind not in (*CORRUPTIONS, OVERRIDE):
            raise FaultConfigError(f"corrupt_rows kind must be one of {(*CORRUPTIONS, OVERRIDE)}")
        if not 0 <= self.fraction <= 1:
            raise FaultConfigError("corrupt_rows fraction must be between 0 and 1")

    def selects(self, row: dict[str, Any]) -> bool:
        if self.where is not None:
            return all(row.get(name) == value for name, value in self.where.items())
        identity = json.dumps(row, sort_keys=True) + self.kind
        digest = hashlib.sha256(identity.encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < self.fraction

    def apply(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """The damaged row(s) to send instead of `row`."""
        bad = dict(row)
        if self.kind == "bad_amount":
            bad["size"] = "12,5O"
        elif self.kind == "unknown_currency":
            bad["currency"] = "QQQ"
        elif self.kind == "missing_reference":
            bad.pop("reference", None)
        elif self.kind == "missing_date":
            bad.pop("dateUtc", None)
            bad.pop("dateUTC", None)
        elif self.kind == "unknown_type":
            bad["transactionType" if "transactionType" in bad else "type"] = "MYSTERY_CREDIT"
        elif self.kind == "long_note":
            bad["note"] = ("Long note " * 1000)[:10_000]
        elif self.kind == "control_chars":
            bad["note"] = "\u202egnirts desrever\u202c \x07bell \x00nul =cmd|' /C calc'!A0"
        elif self.kind == OVERRIDE:
            for name, value in (self.fields or {}).items():
                target = bad
                *parents, leaf = name.split(".")
                for parent in parents:
                    nested = target.get(parent)
                    target[parent] = target = dict(nested) if isinstance(nested, dict) else {}
                target[leaf] = value
        else:  # duplicate_reference
            twin = dict(row)
            if "size" in twin:
                twin["size"] = str(Decimal(twin["size"]) + Decimal("1.11"))
            return [row, twin]
        return [bad]


@dataclass
class FaultDecision:
    latency: float = 0.0
    respond: tuple[int, str] | None = None  # (status, errorCode)
    drop: bool = False
    body: str | None = None  # "html" | "truncated_json"
    echo: bool = False  # the errorCode also carries the request (see `echo_text`)
    nested: tuple[int, int] | None = None  # (status, depth): a body of `depth` unclosed `[`
    expire_session: bool = False
    fired: list[str] = field(default_factory=list)


class FaultPlan:
    def __init__(self, profile: dict[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self.replace(profile or {})

    def replace(self, profile: dict[str, Any]) -> None:
        if not isinstance(profile, dict):
            raise FaultConfigError("a fault profile is a JSON object")
        known = {"seed", "rules", "truncate_above", "late_arrival", "corrupt_rows", "stream"}
        unknown = set(profile) - known
        if unknown:
            raise FaultConfigError(f"unknown fault profile keys: {sorted(unknown)}")
        rules_raw = profile.get("rules", [])
        if not isinstance(rules_raw, list):
            raise FaultConfigError("rules must be a list")
        rules = []
        for raw in rules_raw:
            if not isinstance(raw, dict):
                raise FaultConfigError("each rule is a JSON object")
            try:
                rules.append(
                    FaultRule(**{k: v for k, v in raw.items() if k not in ("matched", "fired")})
                )
            except TypeError as exc:
                raise FaultConfigError(f"bad rule {raw!r}: {exc}") from None
        truncate = profile.get("truncate_above")
        if truncate is not None and (not isinstance(truncate, int) or truncate < 1):
            raise FaultConfigError("truncate_above must be a positive integer or null")
        late_raw = profile.get("late_arrival", [])
        if not isinstance(late_raw, list):
            raise FaultConfigError("late_arrival must be a list")
        try:
            late = [LateArrival(**item) for item in late_raw]
        except TypeError as exc:
            raise FaultConfigError(f"bad late_arrival entry: {exc}") from None
        corrupt_raw = profile.get("corrupt_rows", [])
        if not isinstance(corrupt_raw, list):
            raise FaultConfigError("corrupt_rows must be a list")
        try:
            corrupt = [Corruption(**item) for item in corrupt_raw]
        except TypeError as exc:
            raise FaultConfigError(f"bad corrupt_rows entry: {exc}") from None
        seed = profile.get("seed", 0)
        from ledger_etl.simulator.stream_faults import StreamFaultPlan  # it imports this module

        stream = StreamFaultPlan(profile.get("stream"), seed)
        with self._lock:
            self.stream = stream
            self.seed = seed
            self.rules = rules
            self.truncate_above: int | None = truncate
            self.late_arrival = late
            self.corrupt_rows = corrupt
            self._rng = random.Random(seed)

    def add_rule(self, raw: dict[str, Any]) -> None:
        rule = FaultRule(**raw)
        with self._lock:
            self.rules.append(rule)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "seed": self.seed,
                "rules": [r.public() for r in self.rules],
                "truncate_above": self.truncate_above,
                "late_arrival": [asdict(x) for x in self.late_arrival],
                "corrupt_rows": [asdict(x) for x in self.corrupt_rows],
                "stream": self.stream.describe(),
            }

    def decide(self, method: str, path: str, query: str = "") -> FaultDecision:
        decision = FaultDecision()
        with self._lock:
            for index, rule in enumerate(self.rules):
                if not rule.matches(method, path, query):
                    continue
                rule.matched += 1
                if not self._fires(rule):
                    continue
                rule.fired += 1
                decision.fired.append(f"{index}:{rule.kind}")
                if rule.kind == "latency":
                    decision.latency += rule.seconds
                elif rule.kind == "expire_session":
                    decision.expire_session = True
                elif decision.respond or decision.drop or decision.body or decision.nested:
                    continue  # the first answer-changing rule wins
                elif rule.kind == "nested":
                    decision.nested = (rule.status or 500, rule.depth)
                elif rule.kind in ("status", "echo"):
                    status = rule.status or 503
                    decision.respond = (status, rule.error_code or _default_code(status))
                    decision.echo = rule.kind == "echo"
                elif rule.kind == "throttle":
                    decision.respond = (429, "error.too-many.requests")
                elif rule.kind == "drop":
                    decision.drop = True
                else:
                    decision.body = rule.kind
        return decision

    def _fires(self, rule: FaultRule) -> bool:
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

    def corrupt(self, endpoint: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rules = [c for c in self.corrupt_rows if c.endpoint == endpoint]
        if not rules:
            return rows
        out: list[dict[str, Any]] = []
        for row in rows:
            rule = next((c for c in rules if c.selects(row)), None)
            out.extend(rule.apply(row) if rule else [row])
        return out

    def delay_for(self, endpoint: str, row_key: str) -> float:
        return max(
            (x.delay_for(row_key) for x in self.late_arrival if x.endpoint == endpoint), default=0.0
        )


def _default_code(status: int) -> str:
    return "error.service.unavailable" if status >= 500 else "error.fault.injected"


def echo_text(method: str, target: str, headers: dict[str, str], body: bytes) -> str:
    """The request as an `echo` rule writes it into the errorCode, in three spellings: the body
    as sent (a JSON body shows its strings JSON-escaped), the body's fields and the headers
    percent-encoded, then the headers as sent and as a JSON object. The body comes first: it is
    what a server echoing a login would show first."""
    text = body.decode("utf-8", "replace")
    try:
        fields = json.loads(text) if text.strip() else {}
    except ValueError:
        fields = {}
    form = {k: str(v) for k, v in fields.items()} if isinstance(fields, dict) else {}
    return "\n".join(
        [
            f"{method} {target}",
            f"body={text}",
            f"form={urlencode({**form, **headers})}",
            *(f"{name}: {value}" for name, value in headers.items()),
            f"headers={json.dumps(headers)}",
        ]
    )
