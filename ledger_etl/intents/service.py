"""The webhook service: `POST /intents`, `GET /intents/{id}`, `GET /intents/schema`.

Thin by design: request -> checks (size, query string, address, content type, JSON, signature,
secret, payload shape) -> `Intake.receive` -> response. The order of the checks matters: the
cheap refusals that need no body come first, and the secret is compared before the payload is
examined, so an unauthenticated sender learns nothing about what a valid intent looks like.

Answers: 202 accepted (queued), 200 a repeated delivery (the stored state, nothing sent), 400
not JSON / secret in the query string, 401 authentication failed (no detail), 409 the key was
used for a different payload, 413 body too large, 415 not `application/json` (TradingView sends
`text/plain` when the alert message is not valid JSON), 422 invalid (every violation listed),
503 the broker could not be asked.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from . import store
from .auth import (
    SIGNATURE_HEADER,
    Allowlist,
    AuthFailures,
    secret_in_query,
    secret_matches,
    signature_matches,
)
from .intake import Intake
from .payload import IntentPayload, payload_schema
from .views import intent_view

log = logging.getLogger("ledger_etl.intents.http")
MAX_BODY = 16 * 1024  # an alert is a few hundred bytes


@dataclass
class ServiceContext:
    intake: Intake
    secret: str = field(repr=False)
    hmac_secret: str | None = field(default=None, repr=False)
    allowlist: Allowlist = field(default_factory=lambda: Allowlist(()))
    failures: AuthFailures = field(default_factory=AuthFailures)
    max_body: int = MAX_BODY
    clock: Any = None


def _error(status: int, error: str, detail: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"error": error}
    if detail is not None:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status)


def _unauthorized() -> JSONResponse:
    return JSONResponse({"error": "unauthorized"}, status_code=401)


async def _read_body(request: Request, limit: int) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _decode(body: bytes) -> Any:
    return json.loads(body, parse_float=Decimal, parse_constant=_no_constant)


def _shape_errors(error: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors without the input values (the body carries the secret)."""
    out = []
    for e in error.errors(include_input=False, include_url=False):
        where = ".".join(str(p) for p in e["loc"]) or "payload"
        rule = e["type"]
        message = e["msg"].removeprefix("Value error, ")
        if rule == "value_error":
            for part in message.split("; "):
                out.append({"field": where, "rule": "payload_shape", "detail": part})
            continue
        out.append({"field": where, "rule": rule, "detail": message})
    return out


class AccessLog:
    """Method, path and status of each request; never the query string, which may carry a
    secret someone put there by mistake. Plain ASGI: no per-request task or body copy."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [0]

        async def record(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            log.info(
                "%s %s -> %d %.1fms",
                scope["method"],
                scope["path"],
                status[0],
                (time.perf_counter() - started) * 1000,
            )


def create_app(ctx: ServiceContext) -> Any:
    """The ASGI application: the FastAPI routes inside the access log."""
    return AccessLog(_routes(ctx))


def _routes(ctx: ServiceContext) -> FastAPI:
    app = FastAPI(title="ledger-etl trade intents", docs_url=None, redoc_url=None)
    clock = ctx.clock or (lambda: datetime.now(UTC))

    @app.post("/intents")
    async def post_intent(request: Request) -> JSONResponse:
        if secret_in_query(request.url.query):
            ctx.failures.add("query_secret")
            return _error(
                400,
                "secret_in_query",
                "credentials are refused in the query string "
                "(it ends up in logs); put `secret` in the JSON body",
            )
        if not ctx.allowlist.allows(request.client.host if request.client else None):
            ctx.failures.add("address")
            return _unauthorized()
        body = await _read_body(request, ctx.max_body)
        if body is None:
            return _error(413, "too_large", f"the body is limited to {ctx.max_body} bytes")
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            return _error(
                415,
                "not_json",
                f"expected Content-Type application/json, got "
                f"{media or 'none'}: TradingView sends text/plain when the alert "
                "message is not valid JSON; fix the message template",
            )
        try:
            data = _decode(body)
        except (ValueError, UnicodeDecodeError):
            return _error(400, "invalid_json", "the body is not valid JSON")
        if not isinstance(data, dict):
            return _error(400, "invalid_json", "the body must be a JSON object")
        if ctx.hmac_secret is not None and not signature_matches(
            request.headers.get(SIGNATURE_HEADER), body, ctx.hmac_secret
        ):
            ctx.failures.add("signature")
            return _unauthorized()
        if not secret_matches(data.get("secret"), ctx.secret):
            ctx.failures.add("secret")
            return _unauthorized()
        try:
            payload = IntentPayload.model_validate(data)
        except ValidationError as error:
            return _error(422, "invalid", violations=_shape_errors(error))
        outcome = await run_in_threadpool(ctx.intake.receive, payload, clock())
        return JSONResponse(outcome.body, status_code=outcome.status)

    @app.get("/intents/schema")
    async def schema() -> JSONResponse:
        return JSONResponse(payload_schema())

    @app.get("/intents/{intent_id}")
    async def get_intent(intent_id: str, request: Request) -> JSONResponse:
        auth = request.headers.get("authorization", "")
        if not secret_matches(auth.removeprefix("Bearer ").strip(), ctx.secret):
            ctx.failures.add("secret")
            return _unauthorized()
        row = await run_in_threadpool(store.get, ctx.intake.engine, intent_id)
        if row is None:
            return _error(404, "not_found", "no such intent")
        return JSONResponse(intent_view(row))

    @app.get("/health")
    async def health() -> JSONResponse:
        failures = ctx.failures.snapshot()
        return JSONResponse(
            {
                "status": "ok",
                "mode": ctx.intake.mode,
                "auth_failures": failures,
                "auth_failures_total": sum(failures.values()),
            }
        )

    return app
