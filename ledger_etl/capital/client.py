"""`CapitalClient`: one httpx client per session, with pacing, retries and re-login in one place.

Retry policy (the only one in the package):
- 429 always backs off (exponential, full jitter) and pauses every thread sharing the API key;
- 5xx, connection failures, timeouts and malformed 200s are retried for reads only;
- other 4xx raise `ApiError` at once, carrying the API's `errorCode`;
- 401 `error.invalid.session.token` triggers one single-flight re-login and one replay; another
  one only if the session the replay was refused with had been accepted before (it expired
  again, e.g. while concurrent replays queued behind the rate limit), never for a session that
  was refused from the start, and never more than `max_attempts` times;
- all retries are bounded by `max_attempts` failed answers (a replay after a re-login is not
  one) and by `max_retry_seconds` in total.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import ValidationError

from ledger_etl.provenance import DataSource
from ledger_etl.settings import DEFAULT_SPLIT_THRESHOLD, CapitalSettings

from .auth import CST_HEADER, SECURITY_TOKEN_HEADER, SessionManager, TokenSnapshot
from .errors import (
    RETRY_ALWAYS,
    RETRY_READS,
    SESSION_EXPIRED,
    AuthenticationError,
    CapitalError,
    MalformedResponseError,
    TransientError,
    classify_status,
    error_code_of,
)
from .models import Account, LoginSession, decode_object, describe_validation_error
from .ratelimit import Backoff, RateLimiter, limiters_for_key, release_key

LOGGER_NAME = "ledger_etl.capital"
API_PREFIX = "/api/v1"
# The server counts requests per second; one quiet second after a 429 empties its window.
RATE_LIMIT_PAUSE_S = 1.0
# httpcore's trace event for the moment a request's headers are written to the socket.
REQUEST_LEAVES = "http11.send_request_headers.started"

# httpcore's DEBUG trace prints every response header, session tokens included, as soon as
# anybody turns DEBUG on (a root logger at DEBUG is enough). The values are masked on its loggers
# before any handler sees them.
_TRANSPORT_LOGGERS = ("httpcore.http11", "httpcore.http2", "httpcore.proxy", "httpcore.connection")
_SECRET_HEADER_VALUE = re.compile(
    r"""(\(b(['"])(?:cst|x-security-token|x-cap-api-key)\2,\s*b)(['"])(?:\\.|(?!\3).)*\3""",
    re.IGNORECASE,
)


class _MaskSecretHeaders(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging system's business, not ours
            return True
        masked = _SECRET_HEADER_VALUE.sub(r"\1'***'", message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


_MASK_SECRET_HEADERS = _MaskSecretHeaders()


def mask_transport_logs() -> None:
    """Install the header mask on the transport's loggers (idempotent)."""
    for name in _TRANSPORT_LOGGERS:
        logger = logging.getLogger(name)
        if _MASK_SECRET_HEADERS not in logger.filters:
            logger.addFilter(_MASK_SECRET_HEADERS)


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: Any = field(repr=False)
    raw: bytes = field(repr=False)
    attempts: int
    relogins: int
    duration: float
    url_path: str
    params: dict[str, Any]

    @property
    def body_sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


@dataclass
class ClientStats:
    """Audit counters, safe to update from many threads."""

    requests: int = 0
    retries: int = 0
    logins: int = 0
    relogins: int = 0
    rate_limited: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}


class CapitalClient:
    """Capital.com REST client. `base_url` is the host; `/api/v1` is added here."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        identifier: str,
        password: str,
        *,
        encrypted_password: bool = False,
        rate_limit: float = 10.0,
        split_threshold: int = DEFAULT_SPLIT_THRESHOLD,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 6,
        max_retry_seconds: float = 120.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        logger: logging.Logger | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        rate_limiter: RateLimiter | None = None,
        login_limiter: RateLimiter | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.identifier = identifier
        # Where this client's rows come from, recorded in the ledger (see provenance.py); None
        # means this URL and login. Whoever starts a simulator for the client sets its world.
        self.source: DataSource | None = None
        self.rate_limit = rate_limit
        if split_threshold < 1:
            raise ValueError(f"split_threshold must be at least 1, got {split_threshold}")
        # History answers with this many rows are taken as possibly cut short (see history.py).
        self.split_threshold = split_threshold
        self.backoff = Backoff(backoff_base, backoff_cap, max_attempts, max_retry_seconds)
        self._sleep = sleep
        self._monotonic = monotonic
        self._random = rng or random.Random()
        self.logger = logger or logging.getLogger(LOGGER_NAME)
        mask_transport_logs()
        self._release_key: Callable[[], None] | None = None
        if rate_limiter is None or login_limiter is None:
            shared = limiters_for_key(api_key, rate_limit)
            self._release_key = functools.partial(release_key, api_key, rate_limit)
            rate_limiter = rate_limiter or shared.requests
            login_limiter = login_limiter or shared.logins
        self._limiter = rate_limiter
        self.stats = ClientStats()
        self._http = httpx.Client(
            base_url=self.base_url + API_PREFIX,
            transport=transport,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            headers={"Accept": "application/json"},
        )
        self._session = SessionManager(
            self._call,
            api_key=api_key,
            identifier=identifier,
            password=password,
            encrypted_password=encrypted_password,
            login_limiter=login_limiter,
            count=self.stats.add,
            logger=self.logger,
        )
        self._state = self._session.state
        # Account-scoped endpoints act on the session's active account: `on_account` holds
        # this lock for the whole scope, so work for different accounts never interleaves.
        self._account_lock = threading.RLock()
        self._account_depth = 0

    @classmethod
    def from_settings(
        cls, settings: CapitalSettings, base_url: str | None = None, **kw: Any
    ) -> CapitalClient:
        url = base_url or settings.api_url
        if url is None:
            raise ValueError("settings select the bundled simulator; pass its base_url")
        kw.setdefault("encrypted_password", settings.encrypted_password)
        kw.setdefault("rate_limit", settings.rate_limit)
        kw.setdefault("split_threshold", settings.split_threshold)
        return cls(url, settings.api_key, settings.identifier, settings.password, **kw)

    def __repr__(self) -> str:
        return f"CapitalClient(base_url={self.base_url!r}, identifier={self.identifier!r})"

    def __enter__(self) -> CapitalClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.logout()
        except Exception as error:  # logout is a courtesy; never mask the real outcome
            self.logger.warning("logout failed: %s", error)
        finally:
            self.close()

    def close(self) -> None:
        self._http.close()
        release, self._release_key = self._release_key, None
        if release is not None:
            release()  # this client's rate no longer holds the key's shared pace down

    # --- session (the logic lives in auth.SessionManager) ---

    @property
    def active_account_id(self) -> str | None:
        return self._state.active_account_id

    def login(self) -> LoginSession:
        """Open a session now (normally done lazily by the first request)."""
        return self._session.login()

    def switch_account(self, account_id: str) -> None:
        """Make `account_id` active (done if it already is) and keep it across re-logins."""
        self._session.switch_account(account_id)

    def logout(self) -> None:
        self._session.logout()

    @contextmanager
    def on_account(self, account_id: str) -> Iterator[CapitalClient]:
        """Scope account-scoped calls (history, positions, orders) to `account_id`.

        Holds the account lock for the block, so another thread's scope on another account
        waits; switches the session's account when needed; a re-login inside the block
        restores it before any request goes out. Threads that the block starts may issue
        requests meanwhile: they act on this account. Scopes nest for the same account."""
        with self._account_lock:
            current = self._state.target_account_id
            if not self._account_depth:
                self._session.switch_account(account_id)
            elif current != account_id:
                raise ValueError(
                    f"already scoped to account {current}; cannot nest a scope on {account_id}"
                )
            self._account_depth += 1
            try:
                yield self
            finally:
                self._account_depth -= 1

    # --- what a streaming client needs ---

    def session_tokens(self) -> TokenSnapshot:
        """The current CST and X-SECURITY-TOKEN (logging in first if there are none).

        The snapshot prints without its values; a WebSocket client sends them in every
        message and calls `relogin(snapshot.generation)` when the stream reports them invalid.
        """
        return self._session.tokens()

    def relogin(self, failed_generation: int) -> TokenSnapshot:
        """Replace the tokens of `failed_generation` (once, whoever asks first) and return the
        new ones; the active account is restored before they are handed out."""
        self._session.refresh(failed_generation)
        return self._session.tokens()

    async def relogin_async(self, failed_generation: int) -> TokenSnapshot:
        """`relogin` for asyncio code: runs in a worker thread, so the event loop keeps going."""
        return await asyncio.to_thread(self.relogin, failed_generation)

    @property
    def streaming_host(self) -> str | None:
        """The WebSocket host from the last session answer (`streamingHost`), or None."""
        return self._session.streaming_host

    # --- convenience reads ---

    def ping(self) -> dict[str, Any]:
        return self.request("GET", "/ping").body

    def session_info(self) -> dict[str, Any]:
        return self.request("GET", "/session").body

    def server_time(self) -> datetime:
        response = self._call(
            "GET", "/time", expect_key="serverTime", authenticated=False, retry_transient=True
        )
        try:
            millis: int | None = int(response.body["serverTime"])
        except (TypeError, ValueError):
            millis = None  # int()'s message quotes the server's text: raised outside, unchained
        if millis is None:
            raise MalformedResponseError.for_body(
                "GET", "/time", response.status, response.raw, "serverTime is not an integer"
            )
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)

    def accounts(self) -> list[Account]:
        response = self.request("GET", "/accounts", expect_key="accounts")
        rows = response.body["accounts"]
        try:
            if not isinstance(rows, list):
                raise TypeError("accounts is not a list")
            return [Account.model_validate(row) for row in rows]
        except (ValidationError, TypeError) as error:
            reason = (
                describe_validation_error(error)
                if isinstance(error, ValidationError)
                else str(error)
            )
            raise MalformedResponseError.for_body(
                "GET", "/accounts", response.status, response.raw, reason
            ) from None

    # --- the request path ---

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        expect_key: str | None = None,
        retry_reads: bool = True,
        retry_rate_limited: bool = True,
        lenient: bool = False,
    ) -> ApiResponse:
        """An authenticated call; transient failures are retried for GET when `retry_reads`.

        `retry_rate_limited=False` raises a 429 at once instead of waiting it out: a caller that
        keeps its own durable queue (trade intents) reschedules the request itself. `lenient`
        decodes the body as `decode_object(lenient=True)` does (history rows)."""
        retry = retry_reads and method.upper() == "GET"
        return self._call(
            method, path, params=params, json=json, expect_key=expect_key, retry_transient=retry,
            retry_rate_limited=retry_rate_limited, lenient=lenient,
        )  # fmt: skip

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        expect_key: str | None = None,
        retry_transient: bool,
        authenticated: bool = True,
        allow_relogin: bool = True,
        login: bool = False,
        retry_rate_limited: bool = True,
        lenient: bool = False,
    ) -> ApiResponse:
        """Send with pacing and the retry policy; `login` also adopts the session tokens."""
        method, params = method.upper(), dict(params or {})
        started = self._monotonic()
        attempts = relogins = retries = 0
        while True:
            attempts += 1
            send_headers = dict(headers or {})
            generation = None
            if authenticated:
                tokens = self._session.tokens()
                generation = tokens.generation
                send_headers.update(tokens.headers())
            outcome = self._attempt(method, path, params, json, send_headers, attempts, generation)
            if isinstance(outcome, httpx.Response):
                try:
                    body = None
                    if outcome.status_code != 204 or expect_key is not None:
                        body = decode_object(outcome.content, expect_key, lenient=lenient)
                    if login:
                        self._adopt_login_tokens(outcome)
                    duration = self._monotonic() - started
                    status, raw = outcome.status_code, outcome.content
                    return ApiResponse(
                        status, body, raw, attempts, relogins, duration, path, params
                    )
                except ValueError as problem:
                    error: CapitalError = MalformedResponseError.for_body(
                        method, path, outcome.status_code, outcome.content, str(problem),
                        attempts=attempts, params=params,
                    )  # fmt: skip
                    retry = RETRY_READS
            else:
                status, code = outcome
                expired = status == 401 and code == SESSION_EXPIRED and generation is not None
                if expired and allow_relogin and self._may_relogin(relogins, generation):
                    relogins += 1
                    self._session.refresh(generation or 0)
                    continue
                if login and status in (400, 401):
                    # Bad password, missing or unknown API key: retrying cannot help.
                    raise AuthenticationError(status, code, method, path)
                if status == 429:
                    self.stats.add("rate_limited")
                    self._limiter.penalize(RATE_LIMIT_PAUSE_S)
                    self._limiter.widen()
                if status == 0:
                    error = TransientError(method, path, code or "transport error",
                                           attempts=attempts, params=params)  # fmt: skip
                    retry = RETRY_READS
                else:
                    error, retry = classify_status(
                        status, code, method, path, attempts=attempts, params=params
                    )
                    if status == 429 and not retry_rate_limited:
                        raise error
            delay = None
            if retry == RETRY_ALWAYS or (retry == RETRY_READS and retry_transient):
                elapsed = self._monotonic() - started
                # Replays after a re-login are bounded apart (`_may_relogin`): the budget
                # counts the answers that failed, not the sessions that expired.
                failed = attempts - relogins
                delay = self.backoff.delay(retries, failed, elapsed, self._draw)
            if delay is None:
                raise error
            retries += 1
            self.stats.add("retries")
            self.logger.info("retrying in %.0f ms: %s", delay * 1000, error)
            self._sleep(delay)

    def _may_relogin(self, relogins: int, generation: int | None) -> bool:
        if not relogins:
            return True
        if relogins >= self.backoff.max_attempts or generation is None:
            return False
        return self._state.was_accepted(generation)

    def _draw(self, ceiling: float) -> float:
        return self._random.uniform(0.0, ceiling)

    def _attempt(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        json: Any,
        headers: dict[str, str],
        attempt: int,
        generation: int | None,
    ) -> httpx.Response | tuple[int, str | None]:
        """One paced exchange: the response below 400, else (status, errorCode).

        Transport failures (resets, timeouts, protocol errors) come back as status 0 with the
        exception's class name; its message may name the URL, never headers, but is not kept.
        """
        start = self._limiter.acquire()
        self.stats.add("requests")
        sent_at = self._monotonic()

        def trace(event: str, _info: dict[str, Any]) -> None:
            # httpcore reports the moment the request's first bytes go out: the limiter counts
            # the request from then on (see `RateLimiter.sent`).
            if event == REQUEST_LEAVES:
                self._limiter.sent(start)

        try:
            response = self._http.request(
                method, path, params=params or None, json=json, headers=headers,
                extensions={"trace": trace},
            )  # fmt: skip
        except httpx.TransportError as error:
            self._log_attempt(method, path, params, type(error).__name__, attempt, sent_at)
            return 0, type(error).__name__
        self._log_attempt(method, path, params, response.status_code, attempt, sent_at)
        cst, token = response.headers.get(CST_HEADER), response.headers.get(SECURITY_TOKEN_HEADER)
        self._state.note_tokens(cst, token)  # even those of a login answer refused later
        if generation is not None:
            if response.status_code < 400:
                self._state.accepted(generation)
            self._state.adopt(cst, token, sent_with=generation)
        if response.status_code < 400:
            return response
        # From here on the errorCode is in exception messages, log lines and fetch records.
        return response.status_code, error_code_of(response.content, self._session.secrets())

    def _adopt_login_tokens(self, response: httpx.Response) -> None:
        cst = response.headers.get(CST_HEADER)
        token = response.headers.get(SECURITY_TOKEN_HEADER)
        if not cst or not token:
            raise ValueError("no session token headers")
        self._state.adopt(cst, token, sent_with=None)

    def _log_attempt(
        self, method: str, path: str, params: dict, outcome: object, attempt: int, sent_at: float
    ) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            elapsed_ms = (self._monotonic() - sent_at) * 1000
            self.logger.debug(
                "%s %s params=%s -> %s attempt=%d %.0fms",
                method, path, params, outcome, attempt, elapsed_ms,
            )  # fmt: skip
