"""`/api/prices/{epic}/bars`: stored price bars, the JSON of `ledger-etl prices bars`.

Market data belongs to no account: any authenticated user reads it. Bars are read from the bar
store only (no broker call); heikin-ashi bars are derived from the stored classic bars on read.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from ledger_etl.intervals import Window
from ledger_etl.market.bars import RESOLUTIONS, bar_json, read_bars, read_heikin_ashi
from ledger_etl.service.auth import bearer_user, note
from ledger_etl.service.users import User

router = APIRouter(prefix="/api/prices", tags=["market data"])
UserDep = Annotated[User, Depends(bearer_user)]
EPIC = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
BAR_TYPES = ("classic", "heikin-ashi")
MAX_BARS = 100_000  # one answer is built in memory: a wider window is refused, not truncated


def bad_request(request: Request, message: str) -> HTTPException:
    note(request, outcome="bad_request")
    return HTTPException(400, message)


def instant(request: Request, text: str, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(request, f"{name}: not an ISO 8601 date or instant") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def bar_window(request: Request, start: str, end: str) -> Window:
    try:
        return Window(instant(request, start, "from"), instant(request, end, "to"))
    except ValueError as exc:  # `from` not before `to`, or not whole seconds
        raise bad_request(request, str(exc)) from None


@router.get("/{epic}/bars")
async def bars(
    request: Request,
    user: UserDep,
    epic: str,
    resolution: Annotated[str, Query(max_length=16)],
    start: Annotated[str, Query(alias="from", max_length=40)],
    end: Annotated[str, Query(alias="to", max_length=40)],
    bar_type: Annotated[str, Query(max_length=16)] = "classic",
) -> Any:
    """Stored bars of `epic` opening in `[from, to)`, oldest first, as exact decimal strings."""
    if not EPIC.fullmatch(epic) or ".." in epic:
        raise bad_request(request, "epic: letters, digits, '_', '.' and '-' only")
    if resolution not in RESOLUTIONS:
        raise bad_request(request, f"resolution: one of {', '.join(RESOLUTIONS)}")
    if bar_type not in BAR_TYPES:
        raise bad_request(request, f"bar_type: one of {', '.join(BAR_TYPES)}")
    window = bar_window(request, start, end)
    if (window.end - window.start).total_seconds() / RESOLUTIONS[resolution] > MAX_BARS:
        raise bad_request(request, f"from/to: more than {MAX_BARS} {resolution} bars; narrow it")
    engine = request.app.state.service.reads
    read = read_heikin_ashi if bar_type == "heikin-ashi" else read_bars
    rows = await run_in_threadpool(read, engine, epic, resolution, window)
    return [bar_json(r) for r in rows]
