"""`/api/ledger/entries`: ledger entries by account, time range and type, as JSON pages or a
streamed CSV / XLSX export."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from ledger_etl.ledger import queries
from ledger_etl.service.auth import bearer_user, note, scoped_account
from ledger_etl.service.exports import (
    MEDIA_TYPES,
    XLSX_MAX_ROWS,
    entry_json,
    filter_json,
    iter_csv,
    iter_json,
    write_xlsx,
)
from ledger_etl.service.users import User

router = APIRouter(prefix="/api/ledger", tags=["ledger"])
UserDep = Annotated[User, Depends(bearer_user)]


def entry_filter(
    request: Request, user: User, account: str | None, start: str | None, end: str | None,
    types: str | None,
) -> queries.EntryFilter:  # fmt: skip
    acc = scoped_account(request, user, account)
    try:
        return queries.make_filter(acc, start, end, types)
    except queries.QueryError as exc:
        note(request, outcome="bad_request")
        raise HTTPException(400, str(exc)) from None


def hashed(request: Request, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Pass chunks through, recording the sha256 of everything sent in the audit row."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
        yield chunk
    note(request, sha256=digest.hexdigest())


def export_response(request: Request, flt: queries.EntryFilter, fmt: str) -> Response:
    """A CSV or JSON export streamed from the database, or an XLSX workbook spooled to a
    temporary file (a zip cannot be written forwards only) and then streamed."""
    engine = request.app.state.service.reads
    name = f"ledger_{flt.account_id}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if fmt == "csv":
        chunks = iter_csv(queries.stream(engine, flt))
    elif fmt == "json":
        chunks = iter_json(flt, queries.stream(engine, flt))
    else:
        return _xlsx(request, engine, flt, headers)
    return StreamingResponse(hashed(request, chunks), media_type=MEDIA_TYPES[fmt], headers=headers)


def _xlsx(request: Request, engine: Any, flt: queries.EntryFilter, headers: dict) -> Response:
    if queries.count(engine, flt) > XLSX_MAX_ROWS:
        note(request, outcome="bad_request")
        raise HTTPException(400, "more entries than one XLSX sheet holds: narrow it or use csv")
    fd, path = tempfile.mkstemp(prefix="ledger-export-", suffix=".xlsx")
    try:
        with os.fdopen(fd, "wb") as handle:
            write_xlsx(flt, queries.stream(engine, flt), handle)
        source = open(path, "rb")
    finally:
        os.unlink(path)  # the open handle keeps the bytes until it is closed

    def chunks() -> Iterator[bytes]:
        with source:
            yield from iter(lambda: source.read(1 << 20), b"")

    return StreamingResponse(
        hashed(request, chunks()),
        media_type=MEDIA_TYPES["xlsx"],
        headers=headers,
        background=BackgroundTask(source.close),
    )


@router.get("/entries")
async def entries(
    request: Request,
    user: UserDep,
    account: Annotated[str | None, Query(max_length=64)] = None,
    start: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=40)] = None,
    type: Annotated[str | None, Query(max_length=2000)] = None,
    format: Annotated[str, Query(pattern="^(json|csv|xlsx)$")] = "json",
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 100,
) -> Any:
    """Entries in `[from, to)` (YYYY-MM-DD or ISO 8601 instants), optionally of the given
    types (`TRADE,SWAP`). JSON is paged by `cursor`; CSV and XLSX export every match."""
    flt = entry_filter(request, user, account, start, end, type)
    if format != "json":
        return await run_in_threadpool(export_response, request, flt, format)
    engine = request.app.state.service.reads
    try:
        rows, nxt = await run_in_threadpool(queries.page, engine, flt, cursor, limit)
    except queries.QueryError as exc:
        note(request, outcome="bad_request")
        raise HTTPException(400, str(exc)) from None
    return {
        "filter": filter_json(flt),
        "entries": [entry_json(r) for r in rows],
        "next_cursor": nxt,
    }
