"""`/api/accounts` and `/api/statements/...`: published statements, per account in scope."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ledger_etl.service.audit import append_alert
from ledger_etl.service.auth import NotFound, bearer_user, note, scoped_account
from ledger_etl.service.reading import (
    TamperedFile,
    VerifiedFile,
    published_accounts,
    read_published,
    statement_detail,
    stream_verified,
    visible_accounts,
)
from ledger_etl.service.users import User
from ledger_etl.statements.paths import StatementError, UnsafeNameError, parse_month

router = APIRouter(prefix="/api", tags=["statements"])
UserDep = Annotated[User, Depends(bearer_user)]
MEDIA = {
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".parquet": "application/vnd.apache.parquet",
    ".pdf": "application/pdf",
}


def service_of(request: Request) -> Any:
    return request.app.state.service


def month_or_404(request: Request, month: str) -> str:
    try:
        return parse_month(month).label
    except UnsafeNameError:
        note(request, outcome="not_found")
        raise NotFound() from None


@router.get("/accounts")
def accounts(request: Request, user: UserDep) -> dict[str, Any]:
    """The accounts in the caller's scope that have statements or ledger entries."""
    service = service_of(request)
    reader = service.reader
    found = visible_accounts(reader, service.reads, user)
    return {"accounts": [{"account_id": a, "months": reader.months(a)} for a in found]}


@router.get("/statements")
def statements(
    request: Request,
    user: UserDep,
    account: Annotated[str | None, Query(max_length=64)] = None,
    month: Annotated[str | None, Query(max_length=7)] = None,
) -> JSONResponse:
    """Published account-months with their versions, status, reconciliation and totals."""
    service = service_of(request)
    reader = service.reader
    if account is not None:
        accounts_ = [scoped_account(request, user, account)]
    else:
        accounts_ = published_accounts(reader, user)
    label = month_or_404(request, month) if month is not None else None
    items = []
    for acc in accounts_:  # each month read again only when its files changed (listing.py)
        if label is None:
            items += service.listings.account(reader, acc)
            continue
        listing = service.listings.month(reader, acc, label)
        if listing is not None:
            items.append(listing)
    # Plain JSON already: answered as it is, without FastAPI's slower generic encoder.
    return JSONResponse({"statements": items})


def _detail(request: Request, user: User, account: str, month: str, version: int | None) -> Any:
    service = service_of(request)
    acc = scoped_account(request, user, account)
    label = month_or_404(request, month)
    try:
        return statement_detail(service.reader, acc, label, version)
    except TamperedFile as exc:
        refuse(request, service, acc, exc)
    except StatementError:
        note(request, outcome="not_found")
        raise NotFound() from None


@router.get("/statements/{account}/{month}")
def statement_latest(request: Request, user: UserDep, account: str, month: str) -> Any:
    """The current version of an account-month."""
    return _detail(request, user, account, month, None)


@router.get("/statements/{account}/{month}/v{version}")
def statement_version(
    request: Request, user: UserDep, account: str, month: str, version: str
) -> Any:
    """One version, with its diff and, when superseded, the diff of its successor."""
    return _detail(request, user, account, month, version_or_404(request, version))


def version_or_404(request: Request, version: str) -> int:
    if not (version.isascii() and version.isdigit() and 0 < len(version) <= 6):
        note(request, outcome="not_found")
        raise NotFound()
    return int(version)


def record_refusal(request: Request, service: Any, exc: TamperedFile) -> None:
    """A published file failed its sha256: note it for the audit row and append an alert."""
    detail = f"sha256 mismatch: {exc.path.name} has {exc.found}, manifest says {exc.expected}"
    note(request, outcome="refused_tampered", detail=detail)
    user = getattr(request.state, "user", None)
    append_alert(
        service.export_root,
        {
            "kind": "tampered_file",
            "path": str(exc.path),
            "expected_sha256": exc.expected,
            "found_sha256": exc.found,
            "user": user.name if user is not None else None,
            "client": request.client.host if request.client else None,
        },
    )


def refuse(request: Request, service: Any, account: str, exc: TamperedFile) -> None:
    """Record the refusal, then answer 500 without the file's bytes."""
    record_refusal(request, service, exc)
    raise HTTPException(500, "the published file failed verification and is not served")


async def serve_file(
    request: Request, user: User, account: str, month: str, version: str, file: str
) -> Response:
    """Verify a published file against its manifest, then send it (shared with the pages)."""
    service = service_of(request)
    acc = scoped_account(request, user, account)
    label = month_or_404(request, month)
    number = version_or_404(request, version)
    try:
        verified: VerifiedFile = await run_in_threadpool(
            read_published, service.reader, acc, label, number, file
        )
    except TamperedFile as exc:
        await run_in_threadpool(refuse, request, service, acc, exc)
        raise AssertionError("unreachable") from None
    except StatementError:
        note(request, outcome="not_found")
        raise NotFound() from None
    note(request, sha256=verified.sha256)
    etag = f'"{verified.sha256}"'
    headers = {
        "ETag": etag,
        "Content-Disposition": f'attachment; filename="{acc}_{label}_v{number}_{file}"',
        "Cache-Control": "private, no-cache",
    }
    suffix = file[file.rfind(".") :] if "." in file else ""
    media = MEDIA.get(suffix, "application/octet-stream")
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if verified.body is not None:
        return Response(verified.body, media_type=media, headers=headers)
    headers["Content-Length"] = str(verified.size)
    return StreamingResponse(stream_verified(verified), media_type=media, headers=headers)


@router.get("/statements/{account}/{month}/v{version}/{file}")
async def statement_file(
    request: Request, user: UserDep, account: str, month: str, version: str, file: str
) -> Response:
    """A published file, served only when its sha256 matches the manifest (ETag = sha256)."""
    return await serve_file(request, user, account, month, version, file)
