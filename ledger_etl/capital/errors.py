"""Typed errors of the Capital.com client.

Messages carry the HTTP method, the path (never a query string or header) and the API's
`errorCode`; they never carry credentials, session tokens or response bodies. The `errorCode` is
text the server wrote, and a server (or a proxy in front of it) may echo the request back in it:
`redact` masks every secret of the session in it and caps its length before anything keeps it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, quote_plus

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


# --- text the server wrote: masked and capped before it is logged, stored or shown ---

MASK = "***"
SERVER_TEXT_LIMIT = 500  # characters of server text kept (after masking)


def _spellings(secret: str) -> set[str]:
    """How a secret can appear in server text: raw, JSON-escaped (ASCII-only or not, with `/`
    escaped or not, as servers differ) and percent-encoded (space as %20 or +)."""
    escaped_ascii = json.dumps(secret)[1:-1]
    escaped = json.dumps(secret, ensure_ascii=False)[1:-1]
    return {
        secret,
        escaped_ascii,
        escaped,
        escaped_ascii.replace("/", "\\/"),
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
    }


@functools.lru_cache(maxsize=64)
def _secret_pattern(secrets: frozenset[str]) -> re.Pattern[str] | None:
    spellings = {spelling for secret in secrets if secret for spelling in _spellings(secret)}
    if not spellings:
        return None
    # Longest first, so a secret containing another is masked whole. Case is ignored because
    # percent-encoding may use either case of hex digits; masking a little more is harmless.
    ordered = sorted(spellings, key=lambda text: (-len(text), text))
    return re.compile("|".join(re.escape(text) for text in ordered), re.IGNORECASE)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` from the server with every spelling of every secret masked, cut at
    `SERVER_TEXT_LIMIT` characters (saying so when it was cut)."""
    pattern = _secret_pattern(frozenset(secrets))
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if len(text) > SERVER_TEXT_LIMIT:
        text = f"{text[:SERVER_TEXT_LIMIT]}... [cut: {len(text)} characters]"
    return text


# --- which HTTP answer means which error: the retry policy's table, written once ---

SESSION_EXPIRED = "error.invalid.session.token"
NOT_DIFFERENT_ACCOUNT = "error.not-different.accountId"
# Codes the client branches on are kept verbatim: a short secret that happens to occur in one
# (a password "session") must not turn a session expiry into an unknown error.
ACTED_ON_CODES = frozenset({SESSION_EXPIRED, NOT_DIFFERENT_ACCOUNT})
RETRY_ALWAYS = "always"  # 429: nothing was done, waiting is the fix
RETRY_READS = "reads"  # 5xx, transport failures, malformed 200s: safe to repeat for GET only
RETRY_NEVER = "never"  # other 4xx: repeating the same request cannot succeed


def error_code_of(raw: bytes, secrets: Iterable[str] = ()) -> str | None:
    """The `errorCode` of an error body, if it has one, redacted of `secrets`."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    code = body.get("errorCode") if isinstance(body, dict) else None
    if not isinstance(code, str):
        return None
    return code if code in ACTED_ON_CODES else redact(code, secrets)


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
