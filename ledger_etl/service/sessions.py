"""Page sessions: a signed cookie naming the user, and CSRF tokens for the forms.

The cookie holds the user's name, the first 16 hex digits of the hash of the token it was
opened with (revoking the user or replacing its token ends the session), a random nonce and an
expiry, signed with HMAC-SHA256. It is HttpOnly and SameSite=Strict. Every form that changes
state carries a token bound to the session's nonce (or, before sign-in, to a random cookie of
its own); a form from elsewhere cannot know it.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
from typing import Any

from fastapi import Request, Response

from ledger_etl.service.users import User, active_user, token_hash

SESSION_COOKIE = "lrs_session"
PRESESSION_COOKIE = "lrs_csrf"
SESSION_SECONDS = 8 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def open_session(response: Response, config: Any, user: User, token: str) -> None:
    payload = {
        "u": user.name,
        "h": token_hash(token)[:16],
        "n": secrets.token_hex(16),
        "exp": int(time.time()) + SESSION_SECONDS,
    }
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    value = f"{body}.{config.sign('session:' + body)}"
    response.set_cookie(
        SESSION_COOKIE, value, max_age=SESSION_SECONDS, httponly=True, samesite="strict",
        secure=config.secure_cookies, path="/",
    )  # fmt: skip
    response.delete_cookie(PRESESSION_COOKIE, path="/")


def close_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


def session_payload(request: Request) -> dict[str, Any] | None:
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw or raw.count(".") != 1 or len(raw) > 1000:
        return None
    body, mac = raw.split(".")
    config = request.app.state.service
    if not hmac.compare_digest(mac, config.sign("session:" + body)):
        return None
    try:
        payload = json.loads(_unb64(body))
    except ValueError:
        return None
    if not isinstance(payload, dict) or payload.get("exp", 0) < time.time():
        return None
    return payload


def session_user(request: Request) -> User | None:
    payload = session_payload(request)
    if payload is None:
        return None
    user = active_user(request.app.state.service.reads, str(payload["u"]), str(payload["h"]))
    if user is not None:
        request.state.user = user
    return user


def csrf_token(request: Request, response: Response | None = None) -> str:
    """The token the page's forms carry: bound to the session, or before sign-in to a random
    cookie set on `response`."""
    config = request.app.state.service
    payload = session_payload(request)
    if payload is not None:
        return config.sign("csrf:" + str(payload["n"]))
    seed = request.cookies.get(PRESESSION_COOKIE)
    if not seed or len(seed) != 32:
        seed = secrets.token_hex(16)
        if response is not None:
            response.set_cookie(
                PRESESSION_COOKIE, seed, max_age=3600, httponly=True, samesite="strict",
                secure=config.secure_cookies, path="/",
            )  # fmt: skip
    return config.sign("csrf:pre:" + seed)


def csrf_ok(request: Request, submitted: str | None) -> bool:
    """The submitted form token matches, and the request does not come from another origin."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        return False
    if not submitted:
        return False
    config = request.app.state.service
    payload = session_payload(request)
    if payload is not None:
        expected = config.sign("csrf:" + str(payload["n"]))
    else:
        seed = request.cookies.get(PRESESSION_COOKIE)
        if not seed:
            return False
        expected = config.sign("csrf:pre:" + seed)
    return hmac.compare_digest(expected, submitted)
