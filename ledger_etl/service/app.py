"""The read service's ASGI application: `create_app(ServiceConfig)`.

Routers are listed in `ROUTERS`; a new domain (exposure, orders, prices) adds its own module
and one line there. Every API route depends on `auth.bearer_user`; the `AuditMiddleware` writes
one audit row per request under /api/ and per page file download, after the last byte is sent.
No CORS middleware is installed: browsers on other origins get no access.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger_etl import __version__
from ledger_etl.ledger.db import reader_engine
from ledger_etl.service import (
    api_admin,
    api_ledger,
    api_prices,
    api_statements,
    api_trading,
    pages,
    pages_trading,
)
from ledger_etl.service.audit import AuditWriter, ReadRecord
from ledger_etl.service.auth import FailureLimiter
from ledger_etl.service.listing import ListingCache
from ledger_etl.service.users import TOKEN_PREFIX
from ledger_etl.statements.published import PublishedStatements

ROUTERS = (
    api_statements.router,
    api_ledger.router,
    api_trading.router,
    api_prices.router,
    api_admin.router,
    pages.router,
    pages_trading.router,
)
AUDITED_PREFIXES = (
    "/api/", "/files/", "/exports/", "/statement", "/ledger", "/exposure", "/signin",
)  # fmt: skip
STATIC = Path(__file__).with_name("static")
_TOKENISH = re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_\-]*")


@dataclass
class ServiceConfig:
    engine: Engine
    export_root: Path
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    limiter: FailureLimiter = field(default_factory=FailureLimiter)
    secure_cookies: bool = False  # set behind TLS: cookies then carry `Secure`
    listings: ListingCache = field(default_factory=ListingCache, repr=False)
    reads: Engine = field(init=False, repr=False)
    audit: AuditWriter = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Every query the service makes reads, except the audit rows (written through
        # `engine`): its reads take no write lock on SQLite.
        self.reads = reader_engine(self.engine)
        self.audit = AuditWriter(self.engine)

    @property
    def reader(self) -> PublishedStatements:
        return PublishedStatements(self.export_root)

    def sign(self, text: str) -> str:
        return hmac.new(self.secret, text.encode(), "sha256").hexdigest()


def create_app(config: ServiceConfig) -> FastAPI:
    app = FastAPI(
        title="ledger-etl read service",
        version=__version__,
        description=(
            "Published statements, the ledger, exposure and orders per account, and stored price"
            " bars, for finance and risk."
        ),
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,  # a path is answered as written, never redirected elsewhere
    )
    app.state.service = config
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The parameter names only: the rejected values are the caller's own input.
        where = sorted({".".join(str(p) for p in e.get("loc", ())) for e in exc.errors()})
        _note_outcome(request, "bad_request")
        return JSONResponse({"detail": "invalid parameters: " + ", ".join(where)}, 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        _note_outcome(request, "not_found" if exc.status_code == 404 else None)
        headers = getattr(exc, "headers", None)
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=headers)

    @app.exception_handler(pages.SignInRequired)
    async def _signin(request: Request, exc: pages.SignInRequired) -> RedirectResponse:
        _note_outcome(request, "unauthenticated")
        return RedirectResponse("/signin", status_code=303)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(SecurityHeaders)
    app.add_middleware(AuditMiddleware, config=config)
    return app


def _note_outcome(request: Request, outcome: str | None) -> None:
    audit = getattr(request.state, "audit", None)
    if audit is None:
        audit = request.state.audit = {}
    if outcome and "outcome" not in audit:
        audit["outcome"] = outcome


def redact_query(query: str) -> str:
    """A query string with anything shaped like a token blanked (a token put in a URL by
    mistake must not reach the audit table)."""
    return _TOKENISH.sub("[redacted]", query)


class RedactTokens(logging.Filter):
    """Blanks token-shaped text in log records (uvicorn's access log prints the query)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        return True


def install_log_redaction() -> None:
    for name in ("uvicorn.access", "uvicorn.error", "uvicorn"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


class SecurityHeaders:
    """Headers every answer carries: no sniffing, no framing, no referrer to other sites, no
    caching."""

    HEADERS = (
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),  # no-referrer would make Origin "null"
        (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self.HEADERS if k not in names]
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"private, no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, wrapped)


class AuditMiddleware:
    """One `read_audit` row per audited request, written once the answer is complete."""

    def __init__(self, app: ASGIApp, config: ServiceConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(AUDITED_PREFIXES):
            await self.app(scope, receive, send)
            return
        status = {"code": 500}
        state = scope.setdefault("state", {})
        recorded = False

        async def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                row = self._read_record(scope, state, status["code"])
                await asyncio.wrap_future(self.config.audit.submit(row))

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Written before the last bytes go out: a client that has its answer can
                # already find the read in the audit.
                await record()
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        finally:
            await record()

    @staticmethod
    def _read_record(scope: Scope, state: dict[str, Any], code: int) -> ReadRecord:
        audit = state.get("audit") or {}
        user = state.get("user")
        # The path as sent (still percent-encoded): a NUL or a control character in it stays
        # text (`%00`) that any backend can store.
        raw = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "replace")
        query = scope.get("query_string", b"").decode("latin-1")
        shown = raw.decode("latin-1") + (f"?{query}" if query else "")
        shown = "".join(c if c.isprintable() else f"%{ord(c):02X}" for c in shown)
        client = scope.get("client")
        outcome = audit.get("outcome") or ("served" if code < 400 else f"http_{code}")
        return ReadRecord(
            user_name=user.name if user is not None else None,
            client=client[0] if client else "unknown",
            method=scope.get("method", "GET"),
            path=redact_query(shown),
            status=code,
            outcome=str(outcome),
            account_id=audit.get("account_id"),
            sha256=audit.get("sha256") if code < 400 else None,
            detail=audit.get("detail"),
        )
