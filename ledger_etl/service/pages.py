"""Server-rendered pages for people: sign in, statements by account and month, ledger search.

Plain HTML forms and links (no script): downloads are ordinary links, so they work without
JavaScript and from the keyboard. Pages use the session cookie (`sessions`); the files they
link to go through the same verification and audit as the API's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from ledger_etl.ledger import queries
from ledger_etl.service import sessions
from ledger_etl.service.api_ledger import export_response
from ledger_etl.service.api_statements import record_refusal, serve_file
from ledger_etl.service.auth import NOT_FOUND, authenticate_token, note, scoped_account
from ledger_etl.service.exports import entry_json
from ledger_etl.service.reading import (
    TamperedFile,
    statement_detail,
    version_listing,
    visible_accounts,
)
from ledger_etl.service.users import User
from ledger_etl.statements.paths import StatementError, UnsafeNameError, parse_month

router = APIRouter(include_in_schema=False)
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(default=True),
)
MAX_FORM = 4096


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    response = HTMLResponse("", status_code=status)
    user = getattr(request.state, "user", None)
    context.setdefault("user", user)
    context["csrf"] = sessions.csrf_token(request, response)
    response.body = TEMPLATES.get_template(name).render(**context).encode()
    response.headers["content-length"] = str(len(response.body))
    return response


class SignInRequired(Exception):
    """A page asked for without a valid session: answered with a redirect to /signin."""


def page_user(request: Request) -> User:
    user = sessions.session_user(request)
    if user is None:
        raise SignInRequired()
    return user


def not_found_page(request: Request) -> HTMLResponse:
    note(request, outcome="not_found")
    return render(request, "error.html", 404, message=NOT_FOUND)


async def form_of(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM:
        raise HTTPException(413, "form too large")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


@router.get("/signin")
def signin_page(request: Request) -> HTMLResponse:
    return render(request, "signin.html", user=None)


@router.post("/signin")
async def signin(request: Request) -> Response:
    form = await form_of(request)
    if not sessions.csrf_ok(request, form.get("csrf")):
        return render(request, "signin.html", 403, user=None, error="The form expired; try again.")
    token = form.get("token", "").strip()
    try:
        user = await run_in_threadpool(authenticate_token, request, token or None)
    except HTTPException as exc:
        message = (
            "Too many failed attempts; wait a minute."
            if exc.status_code == 429
            else ("That token is not valid.")
        )
        return render(request, "signin.html", exc.status_code, user=None, error=message)
    response = RedirectResponse("/", status_code=303)
    sessions.open_session(response, request.app.state.service, user, token)
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    form = await form_of(request)
    if not sessions.csrf_ok(request, form.get("csrf")):
        return render(request, "error.html", 403, message="The form expired; sign out again.")
    response = RedirectResponse("/signin", status_code=303)
    sessions.close_session(response)
    return response


@router.get("/")
def home(request: Request) -> HTMLResponse:
    user = page_user(request)
    service = request.app.state.service
    reader = service.reader
    accounts = [
        {"id": a, "months": reader.months(a)} for a in visible_accounts(reader, service.reads, user)
    ]
    return render(request, "home.html", accounts=accounts)


@router.get("/statement")
def statement_page(
    request: Request, account: str = "", month: str = "", version: str = ""
) -> HTMLResponse:
    user = page_user(request)
    service = request.app.state.service
    try:
        acc = scoped_account(request, user, account)
        label = parse_month(month).label
        number = int(version) if version.isdigit() and len(version) <= 6 else None
        if version and number is None:
            return not_found_page(request)
        detail = statement_detail(service.reader, acc, label, number)
        listing = version_listing(service.reader, acc, label)
    except TamperedFile as exc:
        record_refusal(request, service, exc)
        return render(request, "error.html", 500, message="This statement failed verification.")
    except (HTTPException, UnsafeNameError, StatementError):
        return not_found_page(request)
    return render(request, "statement.html", d=detail, listing=listing)


@router.get("/files/{account}/{month}/v{version}/{file}")
async def page_file(
    request: Request, account: str, month: str, version: str, file: str
) -> Response:
    user = await run_in_threadpool(page_user, request)
    try:
        return await serve_file(request, user, account, month, version, file)
    except HTTPException as exc:
        if exc.status_code == 404:
            return not_found_page(request)
        return render(request, "error.html", exc.status_code, message=str(exc.detail))


@router.get("/ledger")
def ledger_page(
    request: Request,
    account: str = "",
    start: str = "",
    end: str = "",
    types: str = "",
    cursor: str = "",
) -> HTMLResponse:
    user = page_user(request)
    service = request.app.state.service
    accounts = visible_accounts(service.reader, service.reads, user)
    context: dict[str, Any] = {
        "accounts": accounts, "account": account, "start": start, "end": end, "types": types,
        "rows": None, "error": None, "next": None, "export": None,
    }  # fmt: skip
    if not account:
        return render(request, "ledger.html", **context)
    try:
        acc = scoped_account(request, user, account)
    except HTTPException:
        return not_found_page(request)
    try:
        flt = queries.make_filter(acc, start or None, end or None, types or None)
        rows, nxt = queries.page(service.reads, flt, cursor or None, 100)
    except queries.QueryError as exc:
        context["error"] = str(exc)
        return render(request, "ledger.html", 400, **context)
    query = {"account": acc, "start": start, "end": end, "types": types}
    context["rows"] = [entry_json(r) for r in rows]
    context["next"] = f"/ledger?{urlencode({**query, 'cursor': nxt})}" if nxt else None
    context["export"] = {fmt: f"/exports/ledger?{urlencode({**query, 'format': fmt})}"
                         for fmt in ("csv", "xlsx")}  # fmt: skip
    return render(request, "ledger.html", **context)


@router.get("/exports/ledger")
def ledger_export(
    request: Request, account: str = "", start: str = "", end: str = "", types: str = "",
    format: str = "csv",
) -> Response:  # fmt: skip
    user = page_user(request)
    if format not in ("csv", "xlsx"):
        return not_found_page(request)
    try:
        acc = scoped_account(request, user, account)
        flt = queries.make_filter(acc, start or None, end or None, types or None)
    except HTTPException:
        return not_found_page(request)
    except queries.QueryError as exc:
        return render(request, "error.html", 400, message=str(exc))
    return export_response(request, flt, format)
