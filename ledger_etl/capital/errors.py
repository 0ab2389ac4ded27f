"""Typed errors of the Capital.com client.

Messages carry the HTTP method, the path (never a query string or header) and the API's
`errorCode`; they never carry credentials, session tokens or response bodies.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from ledger_etl.errors import LedgerEtlError


class CapitalError(LedgerEtlError):
    """Base class of everything the `ledger_etl.capital` package raises on purpose."""


def _describe(method: str, path: str) -> str:
    return f"{method.upper()} {path}"


def _after(attempts: int) -> str:
    return f"after {attempts} attempt{'' if attempts == 1 else 's'}"


class ApiError(CapitalError):
    """The API answered with an error status (4xx, or 5xx where it is not retried)."""

    def __init__(
        self,
        status: int,
        error_code: str | None,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        attempts: int = 1,
    ) -> None:
        self.status = status
        self.error_code = error_code
        self.method = method.upper()
        self.path = path
        # Only the history/time query parameters travel here (dates, flags); no secrets.
        self.params = dict(params or {})
        self.attempts = attempts
        super().__init__(self._message())

    def _message(self) -> str:
        code = self.error_code if self.error_code else "(no errorCode)"
        return f"{_describe(self.method, self.path)} -> {self.status} {code}"

    def __reduce__(self):  # keep pickling (e.g. across processes) working with keyword args
        return (
            _rebuild,
            (type(self), self.__dict__.copy()),
        )


def _rebuild(cls: type, state: dict) -> CapitalError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, error._message())  # type: ignore[attr-defined]
    return error


class AuthenticationError(ApiError):
    """Credentials rejected (`error.invalid.details`), or the session stayed invalid after a
    re-login (two `error.invalid.session.token` answers in a row)."""


class RateLimitedError(ApiError):
    """HTTP 429 `error.too-many.requests` still answered after the retry budget was spent."""

    def _message(self) -> str:
        return f"{super()._message()} {_after(self.attempts)}"


class TransientError(CapitalError):
    """A 5xx answer, a connection failure or a timeout; retried for reads, then given up."""

    def __init__(
        self,
        method: str,
        path: str,
        reason: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        attempts: int = 1,
        params: Mapping[str, str] | None = None,
    ) -> None:
        self.method = method.upper()
        self.path = path
        self.reason = reason
        self.status = status
        self.error_code = error_code
        self.attempts = attempts
        self.params = dict(params or {})
        super().__init__(self._message())

    def _message(self) -> str:
        outcome = f"{self.status} {self.error_code or ''}".strip() if self.status else self.reason
        return f"{_describe(self.method, self.path)} -> {outcome} {_after(self.attempts)}"

    __reduce__ = ApiError.__reduce__


class MalformedResponseError(CapitalError):
    """A success status whose body is not a JSON object with the expected key.

    Only a short sha256 prefix and the length of the body are kept: a body returned by a proxy
    or by a session endpoint could contain anything, including tokens.
    """

    def __init__(
        self,
        method: str,
        path: str,
        status: int,
        reason: str,
        *,
        body_sha256: str,
        body_length: int,
        attempts: int = 1,
        params: Mapping[str, str] | None = None,
    ) -> None:
        self.method = method.upper()
        self.path = path
        self.status = status
        self.reason = reason
        self.body_sha256 = body_sha256[:12]
        self.body_length = body_length
        self.attempts = attempts
        self.params = dict(params or {})
        super().__init__(self._message())

    @classmethod
    def for_body(
        cls,
        method: str,
        path: str,
        status: int,
        raw: bytes,
        reason: str,
        *,
        attempts: int = 1,
        params: Mapping[str, str] | None = None,
    ) -> MalformedResponseError:
        digest = hashlib.sha256(raw).hexdigest()
        return cls(
            method, path, status, reason,
            body_sha256=digest, body_length=len(raw), attempts=attempts, params=params,
        )  # fmt: skip

    def _message(self) -> str:
        return (
            f"{_describe(self.method, self.path)} -> {self.status} malformed body: {self.reason} "
            f"({self.body_length} bytes, sha256 {self.body_sha256}) {_after(self.attempts)}"
        )

    __reduce__ = ApiError.__reduce__


class WindowSplitError(CapitalError):
    """A window still looked truncated but is too short to be cut in two."""


# --- which HTTP answer means which error: the retry policy's table, written once ---

SESSION_EXPIRED = "error.invalid.session.token"
RETRY_ALWAYS = "always"  # 429: nothing was done, waiting is the fix
RETRY_READS = "reads"  # 5xx, transport failures, malformed 200s: safe to repeat for GET only
RETRY_NEVER = "never"  # other 4xx: repeating the same request cannot succeed


def error_code_of(raw: bytes) -> str | None:
    """The `errorCode` of an error body, if it has one."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    code = body.get("errorCode") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def classify_status(
    status: int,
    code: str | None,
    method: str,
    path: str,
    *,
    attempts: int,
    params: Mapping[str, str] | None = None,
) -> tuple[CapitalError, str]:
    """The error an HTTP status of 400 or above stands for, and when it may be retried."""
    if status == 401 and code == SESSION_EXPIRED:
        # Handled by re-login before this error is ever raised; raised on a second expiry.
        return AuthenticationError(status, code, method, path, attempts=attempts), RETRY_NEVER
    if status == 429:
        error = RateLimitedError(status, code, method, path, attempts=attempts, params=params)
        return error, RETRY_ALWAYS
    if status >= 500:
        transient = TransientError(
            method, path, f"HTTP {status}", status=status, error_code=code,
            attempts=attempts, params=params,
        )  # fmt: skip
        return transient, RETRY_READS
    return ApiError(status, code, method, path, attempts=attempts, params=params), RETRY_NEVER
