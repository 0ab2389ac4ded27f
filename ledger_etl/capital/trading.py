"""Live-state calls: snapshots of positions and working orders, confirms, market details, and
the dealing calls that change them.

Snapshots act on the session's active account: call them inside `client.on_account(...)` (the
`*_for` helpers do it). Reads go through the client's single retry policy; dealing calls are
POST/PUT/DELETE and are never replayed after a transient failure (Capital.com has no
idempotency key: a replayed POST could open a second position). A 429 is retried, because the
API rejects the excess request without dealing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import ApiError, MalformedResponseError
from .models import RowProblem, array_item_texts, dump_row
from .trading_models import (
    Confirm,
    MarketDetails,
    OpenPosition,
    WorkingOrder,
    parse_confirm,
    parse_market_details,
    parse_position,
    parse_working_order,
)

if TYPE_CHECKING:
    from .client import ApiResponse, CapitalClient

MARKETS_BATCH = 50  # `/markets?epics=` takes at most 50 epics (reference §7)
T = TypeVar("T")


@dataclass(frozen=True)
class SnapshotRead(Generic[T]):
    """One snapshot answer: parsed rows with their raw text, and the rows that failed."""

    rows: list[T]
    raws: list[str]
    problems: list[RowProblem]
    body_sha256: str
    received_at: datetime


def _read_rows(
    client: CapitalClient, path: str, key: str, parse: Callable[[Any], T | RowProblem]
) -> SnapshotRead[T]:
    response = client.request("GET", path, expect_key=key)
    items = response.body[key]
    if not isinstance(items, list):
        raise MalformedResponseError.for_body(
            "GET", path, response.status, response.raw, f"{key} is not a list"
        )
    texts = array_item_texts(response.raw, key) or [dump_row(item) for item in items]
    rows: list[T] = []
    raws: list[str] = []
    problems: list[RowProblem] = []
    for item, text in zip(items, texts, strict=False):
        parsed = parse(item)
        if isinstance(parsed, RowProblem):
            problems.append(parsed)
        else:
            rows.append(parsed)
            raws.append(text)
    return SnapshotRead(rows, raws, problems, response.body_sha256, datetime.now(UTC))


def fetch_positions(client: CapitalClient) -> SnapshotRead[OpenPosition]:
    """`GET /positions` of the active account."""
    return _read_rows(client, "/positions", "positions", parse_position)


def fetch_working_orders(client: CapitalClient) -> SnapshotRead[WorkingOrder]:
    """`GET /workingorders` of the active account."""
    return _read_rows(client, "/workingorders", "workingOrders", parse_working_order)


@dataclass
class MarketDetailsRead:
    """Details per epic; epics the API does not know, and rows that could not be parsed."""

    details: dict[str, MarketDetails] = field(default_factory=dict)
    unknown_epics: list[str] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)


def _batches(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def fetch_market_details(client: CapitalClient, epics: Iterable[str]) -> MarketDetailsRead:
    """`GET /markets?epics=` in batches of 50. One unknown epic fails a whole batch with 404
    `error.not-found.epic`; the batch is then bisected, so the known epics are still read and
    the unknown ones are named, never silently dropped."""
    wanted = sorted({e for e in epics if e})
    result = MarketDetailsRead()
    for batch in _batches(wanted, MARKETS_BATCH):
        _read_batch(client, list(batch), result)
    return result


def _read_batch(client: CapitalClient, batch: list[str], result: MarketDetailsRead) -> None:
    try:
        response = client.request(
            "GET", "/markets", params={"epics": ",".join(batch)}, expect_key="marketDetails"
        )
    except ApiError as error:
        if error.status not in (400, 404):
            raise
        if len(batch) == 1:
            result.unknown_epics.append(batch[0])
            return
        middle = len(batch) // 2
        _read_batch(client, batch[:middle], result)
        _read_batch(client, batch[middle:], result)
        return
    items = response.body["marketDetails"]
    if not isinstance(items, list):
        raise MalformedResponseError.for_body(
            "GET", "/markets", response.status, response.raw, "marketDetails is not a list"
        )
    for item in items:
        parsed = parse_market_details(item)
        if isinstance(parsed, RowProblem):
            result.problems.append(parsed)
        else:
            result.details[parsed.epic] = parsed
    for epic in batch:
        if epic not in result.details and not any(_names(p, epic) for p in result.problems):
            result.problems.append(RowProblem({"epic": epic}, "no market details returned"))


def _names(problem: RowProblem, epic: str) -> bool:
    instrument = problem.row.get("instrument")
    return isinstance(instrument, dict) and instrument.get("epic") == epic


def fetch_confirm(
    client: CapitalClient,
    deal_reference: str,
    *,
    attempts: int = 5,
    wait_s: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
) -> Confirm:
    """`GET /confirms/{ref}`. A confirm may not exist yet right after the POST: a 404 is
    asked again with a growing pause, `attempts` times in all, then raised."""
    for attempt in range(attempts):
        try:
            response = client.request("GET", f"/confirms/{deal_reference}")
        except ApiError as error:
            if error.status != 404 or attempt == attempts - 1:
                raise
            sleep(wait_s * (2**attempt))
            continue
        parsed = parse_confirm(response.body)
        if isinstance(parsed, RowProblem):
            raise MalformedResponseError.for_body(
                "GET", "/confirms", response.status, response.raw, parsed.reason
            )
        return parsed
    raise AssertionError("unreachable")  # pragma: no cover


# --- dealing: each returns the dealReference to confirm ---


def _deal(client: CapitalClient, method: str, path: str, body: dict[str, Any] | None) -> str:
    response: ApiResponse = client.request(method, path, json=body, expect_key="dealReference")
    reference = response.body["dealReference"]
    if not isinstance(reference, str) or not reference:
        raise MalformedResponseError.for_body(
            method, path, response.status, response.raw, "dealReference is not a string"
        )
    return reference


def _clean(body: dict[str, Any]) -> dict[str, Any]:
    """Drop unset keys; Decimal amounts go out as JSON numbers (their exact text)."""
    return {k: (_number(v)) for k, v in body.items() if v is not None}


def _number(value: Any) -> Any:
    """A Decimal as the JSON number with the same text: httpx encodes with `json.dumps`, so
    the value goes out as a float only when that float prints back as the exact decimal."""
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return int(value)
        as_float = float(value)
        if Decimal(repr(as_float)) != value:
            raise ValueError(f"{value} cannot be sent exactly as a JSON number")
        return as_float
    return value


def open_position(client: CapitalClient, **fields: Any) -> str:
    """POST /positions (epic, direction, size, optional stop/profit fields)."""
    return _deal(client, "POST", "/positions", _clean(fields))


def amend_position(client: CapitalClient, deal_id: str, **fields: Any) -> str:
    return _deal(client, "PUT", f"/positions/{deal_id}", _clean(fields))


def close_position(client: CapitalClient, deal_id: str) -> str:
    return _deal(client, "DELETE", f"/positions/{deal_id}", None)


def create_working_order(client: CapitalClient, **fields: Any) -> str:
    """POST /workingorders (epic, direction, size, level, type, optional goodTillDate...)."""
    return _deal(client, "POST", "/workingorders", _clean(fields))


def amend_working_order(client: CapitalClient, deal_id: str, **fields: Any) -> str:
    return _deal(client, "PUT", f"/workingorders/{deal_id}", _clean(fields))


def delete_working_order(client: CapitalClient, deal_id: str) -> str:
    return _deal(client, "DELETE", f"/workingorders/{deal_id}", None)
