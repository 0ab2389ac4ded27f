"""`GET /history/transactions` and `GET /history/activity`: request rules and row rendering.

Rules reproduced from the reference: `from`/`to` as `YYYY-MM-DDTHH:MM:SS` only (a `Z`, an offset,
milliseconds or a bare date give 400 `error.invalid.from` / `error.invalid.to`); `lastPeriod` in
seconds, default 600, at most 86400 (`error.invalid.lastPeriod`); activity windows of at most one
day (`error.invalid.daterange`), a one-sided range implying one day; rows newest first; `dateUTC`
in activity but `dateUtc` in transactions; `size` a signed decimal string.

Window inclusivity is undocumented for the real API; the simulator's default (`closed`) returns
rows with `from <= dateUtc <= to`, the hardest case for a client (a row exactly on a boundary
comes back from two adjacent windows). `half-open` and `left-open` are selectable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ledger_etl.simulator.errors import ApiError
from ledger_etl.simulator.events import Row
from ledger_etl.simulator.wire import (
    format_local_datetime,
    format_row_datetime,
    format_size,
    parse_request_datetime,
)

MAX_LAST_PERIOD = 86400
DEFAULT_LAST_PERIOD = 600
FIQL_FIELDS = ("epic", "source", "status", "type")
BOUNDS = ("closed", "half-open", "left-open")
ONE_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class HistoryQuery:
    start: datetime  # inclusive, after applying the bounds rule
    end: datetime  # exclusive
    detailed: bool = False
    deal_id: str | None = None
    fiql: tuple[tuple[str, bool, frozenset[str]], ...] = ()
    tx_type: str | None = None


def _date_param(params: Mapping[str, str], name: str) -> datetime | None:
    raw = params.get(name)
    if raw is None:
        return None
    parsed = parse_request_datetime(raw)
    if parsed is None:
        raise ApiError(400, f"error.invalid.{name}")
    return parsed


def _last_period(params: Mapping[str, str]) -> int:
    raw = params.get("lastPeriod")
    if raw is None:
        return DEFAULT_LAST_PERIOD
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "error.invalid.lastPeriod") from None
    if not 0 < value <= MAX_LAST_PERIOD:
        raise ApiError(400, "error.invalid.lastPeriod")
    return value


def parse_fiql(raw: str) -> tuple[tuple[str, bool, frozenset[str]], ...]:
    """`source!=DEALER;type!=POSITION;epic==OIL_CRUDE,GOLD` -> ((field, negate, values), ...)."""
    clauses = []
    for part in raw.split(";"):
        part = part.strip()
        if not part:
            continue
        if "!=" in part:
            name, _, values = part.partition("!=")
            negate = True
        elif "==" in part:
            name, _, values = part.partition("==")
            negate = False
        else:
            raise ApiError(400, "error.invalid.filter")
        name = name.strip()
        items = frozenset(v.strip() for v in values.split(",") if v.strip())
        if name not in FIQL_FIELDS or not items:
            raise ApiError(400, "error.invalid.filter")
        clauses.append((name, negate, items))
    return tuple(clauses)


def parse_query(
    params: Mapping[str, str],
    endpoint: str,
    now: datetime,
    bounds: str,
    transactions_max_days: float | None = None,
) -> HistoryQuery:
    start = _date_param(params, "from")
    end = _date_param(params, "to")
    period = _last_period(params)
    if start is None and end is None:
        start, end = now - timedelta(seconds=period), now
    elif end is None:
        assert start is not None
        end = start + timedelta(days=1) if endpoint == "activity" else now
    elif start is None:
        start = end - timedelta(days=1)
    if end < start:
        raise ApiError(400, "error.invalid.daterange")
    if endpoint == "activity" and end - start > timedelta(days=1):
        raise ApiError(400, "error.invalid.daterange")
    if (
        endpoint == "transactions"
        and transactions_max_days is not None
        and end - start > timedelta(days=transactions_max_days)
    ):
        raise ApiError(400, "error.invalid.daterange")
    lo = start + ONE_MS if bounds == "left-open" else start
    hi = end if bounds == "half-open" else end + ONE_MS
    fiql: tuple[tuple[str, bool, frozenset[str]], ...] = ()
    if endpoint == "activity" and params.get("filter"):
        fiql = parse_fiql(params["filter"])
    return HistoryQuery(
        start=lo,
        end=hi,
        detailed=endpoint == "activity" and params.get("detailed", "").lower() == "true",
        deal_id=params.get("dealId") or None if endpoint == "activity" else None,
        fiql=fiql,
        tx_type=params.get("type") or None if endpoint == "transactions" else None,
    )


def row_key(row: Row) -> str:
    f = row.fields
    ident = f.get("reference") or f"{f.get('dealId')}|{f.get('type')}|{f.get('status')}"
    return f"{row.kind}|{row.account}|{row.ts.isoformat()}|{ident}|{row.order}"


def matches(row: Row, query: HistoryQuery) -> bool:
    f = row.fields
    if query.tx_type is not None and f["transactionType"] != query.tx_type:
        return False
    if query.deal_id is not None and f.get("dealId") != query.deal_id:
        return False
    for name, negate, values in query.fiql:
        if (f.get(name) in values) == negate:
            return False
    return True


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def render_transaction(row: Row, offset_hours: int) -> dict[str, Any]:
    f = row.fields
    out: dict[str, Any] = {
        "date": format_local_datetime(row.ts, offset_hours),
        "dateUtc": format_row_datetime(row.ts),
    }
    if "instrumentName" in f:
        out["instrumentName"] = f["instrumentName"]
    out.update(
        transactionType=f["transactionType"],
        note=f["note"],
        reference=f["reference"],
        size=format_size(f["size"]),
        currency=f["currency"],
        status=f["status"],
    )
    if "dealId" in f:
        out["dealId"] = f["dealId"]
    return out


def render_activity(row: Row, offset_hours: int, detailed: bool) -> dict[str, Any]:
    f = row.fields
    out: dict[str, Any] = {
        "date": format_local_datetime(row.ts, offset_hours),
        "dateUTC": format_row_datetime(row.ts),
        "epic": f["epic"],
        "dealId": f["dealId"],
        "source": f["source"],
        "type": f["type"],
        "status": f["status"],
    }
    if detailed:
        out["details"] = {k: _number(v) for k, v in f["details"].items()}
    return out
