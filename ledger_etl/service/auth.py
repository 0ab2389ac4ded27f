"""Who is asking, and may they see this account.

Bearer tokens for the API, a signed session cookie for the pages; both resolve to a `User`.
An account outside the user's scope is answered exactly like one that does not exist (404,
the same body), so a token never reveals which accounts exist. Failed authentication is
counted per client address and, past a limit, refused for a while with 429 before the token
is even looked up.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from fastapi import HTTPException, Request

from ledger_etl.service.users import User, user_for_token
from ledger_etl.statements.paths import UnsafeNameError, validate_account_id

NOT_FOUND = "not found"


class NotFound(HTTPException):
    """The one answer for a missing or out-of-scope account, month, version or file."""

    def __init__(self) -> None:
        super().__init__(status_code=404, detail=NOT_FOUND)


@dataclass
class FailureLimiter:
    """At most `limit` failed authentications per client address in `window` seconds."""

    limit: int = 10
    window: float = 60.0

    def __post_init__(self) -> None:
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try again, or None when it may now."""
        now = time.monotonic()
        with self._lock:
            failures = self._failures.get(client)
            if not failures:
                return None
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if len(failures) < self.limit:
                return None
            return max(1, int(failures[0] + self.window - now) + 1)

    def fail(self, client: str) -> None:
        with self._lock:
            if len(self._failures) > 100_000:  # a flood of addresses: forget the oldest state
                self._failures.clear()
            self._failures.setdefault(client, deque()).append(time.monotonic())


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def note(request: Request, **fields: object) -> None:
    """Add facts to this request's audit row (account, sha256, outcome, detail)."""
    audit = getattr(request.state, "audit", None)
    if audit is None:
        audit = request.state.audit = {}
    audit.update(fields)


def authenticate_token(request: Request, token: str | None) -> User:
    """The user of a bearer token; 429 while the address is blocked, 401 for a bad token."""
    service = request.app.state.service
    client = client_address(request)
    wait = service.limiter.retry_after(client)
    if wait is not None:
        note(request, outcome="rate_limited")
        raise HTTPException(429, "too many failed authentications", {"Retry-After": str(wait)})
    user = user_for_token(service.reads, token) if token else None
    if user is None:
        service.limiter.fail(client)
        note(request, outcome="unauthenticated")
        raise HTTPException(401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"})
    request.state.user = user
    return user


def bearer_user(request: Request) -> User:
    """FastAPI dependency of every API route: `Authorization: Bearer <token>`."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return authenticate_token(request, token.strip() if scheme.lower() == "bearer" else None)


def scoped_account(request: Request, user: User, account_id: str | None) -> str:
    """`account_id` when it is a valid id in the user's scope; 404 otherwise (no difference
    between an account that does not exist and one the user may not see)."""
    try:
        account = validate_account_id(account_id)
    except UnsafeNameError:
        note(request, outcome="not_found")
        raise NotFound() from None
    note(request, account_id=account)
    if not user.may_read(account):
        note(request, outcome="not_found")
        raise NotFound()
    return account


def require_role(request: Request, user: User, *roles: str) -> None:
    if user.role not in roles:
        note(request, outcome="forbidden")
        raise HTTPException(403, f"this needs the {' or '.join(roles)} role")
