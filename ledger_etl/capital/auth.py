"""Session handling: password encryption, token state, login, account switch, re-login."""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import ValidationError

from .errors import (
    NOT_DIFFERENT_ACCOUNT,
    SESSION_EXPIRED,
    ApiError,
    AuthenticationError,
    MalformedResponseError,
    redact,
)
from .models import LoginSession, describe_validation_error
from .ratelimit import RateLimiter

CST_HEADER = "CST"
SECURITY_TOKEN_HEADER = "X-SECURITY-TOKEN"  # noqa: S105 - a header name, not a secret
API_KEY_HEADER = "X-CAP-API-KEY"
# Logins in a row when the new session dies before its account could be restored.
RESTORE_ATTEMPTS = 3


def encrypt_password(password: str, encryption_key_b64: str, timestamp: int) -> str:
    """Capital.com's encrypted-password scheme.

    `base64(RSA_PKCS1v15(base64(f"{password}|{timestamp}")))`, with the server's public key
    (base64 DER SubjectPublicKeyInfo) and its `timeStamp` used verbatim.
    """
    try:
        der = base64.b64decode(encryption_key_b64, validate=True)
        public_key = serialization.load_der_public_key(der)
    except (binascii.Error, ValueError):
        raise ValueError("encryptionKey is not a base64 DER public key") from None
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise ValueError("encryptionKey is not an RSA public key")
    plaintext = base64.b64encode(f"{password}|{timestamp}".encode())
    try:
        ciphertext = public_key.encrypt(plaintext, padding.PKCS1v15())
    except ValueError:
        # The library's message is about lengths only, but keep it generic regardless.
        raise ValueError("password is too long for the server's encryption key") from None
    return base64.b64encode(ciphertext).decode("ascii")


@dataclass(frozen=True)
class TokenSnapshot:
    """The tokens a request was sent with, and their generation."""

    cst: str | None
    security_token: str | None
    generation: int

    def __repr__(self) -> str:  # the token values must never be printed
        present = self.cst is not None and self.security_token is not None
        return f"TokenSnapshot(generation={self.generation}, present={present})"

    def headers(self) -> dict[str, str]:
        if self.cst is None or self.security_token is None:
            return {}
        return {CST_HEADER: self.cst, SECURITY_TOKEN_HEADER: self.security_token}


class SessionState:
    """Current tokens and account. Every change of token values increments `generation`.

    The generation lets a request that failed with an expired session tell whether somebody
    else has already obtained fresh tokens since it was sent.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cst: str | None = None
        self._security_token: str | None = None
        self._generation = 0
        self._accepted = 0  # the newest generation the API has accepted a request with
        # Every token value ever received, replaced or not: a server may echo an old one back.
        self._tokens_seen: set[str] = set()
        self.active_account_id: str | None = None
        # The account history calls should act on; re-established after every re-login,
        # because a login activates the account the platform marks as preferred.
        self.target_account_id: str | None = None

    @property
    def generation(self) -> int:
        with self._lock:
            return self._generation

    @property
    def has_tokens(self) -> bool:
        with self._lock:
            return self._cst is not None and self._security_token is not None

    def accepted(self, generation: int) -> None:
        """A request sent with `generation`'s tokens was answered: that session did work."""
        with self._lock:
            self._accepted = max(self._accepted, generation)

    def was_accepted(self, generation: int) -> bool:
        """Whether a session of `generation` or newer has been accepted by the API."""
        with self._lock:
            return self._accepted >= generation

    def snapshot(self) -> TokenSnapshot:
        with self._lock:
            return TokenSnapshot(self._cst, self._security_token, self._generation)

    def adopt(self, cst: str | None, security_token: str | None, *, sent_with: int | None) -> bool:
        """Take tokens from a response; returns whether they changed.

        `sent_with` is the generation of the request's own tokens (None for a login). A late
        response to a request sent before a newer login is ignored, so it cannot bring back
        tokens that were already replaced.
        """
        self.note_tokens(cst, security_token)
        if not cst or not security_token:
            return False
        with self._lock:
            if sent_with is not None and sent_with != self._generation:
                return False
            if (cst, security_token) == (self._cst, self._security_token):
                return False
            self._cst, self._security_token = cst, security_token
            self._generation += 1
            return True

    def note_tokens(self, *values: str | None) -> None:
        """Remember token values a response carried, adopted or not (see `tokens_seen`)."""
        with self._lock:
            self._tokens_seen.update(value for value in values if value)

    def tokens_seen(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._tokens_seen)

    def clear(self) -> None:
        with self._lock:
            if self._cst is not None or self._security_token is not None:
                self._generation += 1
            self._cst = self._security_token = None
            self.active_account_id = None

    def __repr__(self) -> str:
        return (
            f"SessionState(generation={self.generation}, has_tokens={self.has_tokens}, "
            f"active_account_id={self.active_account_id!r})"
        )


class SessionManager:
    """Logs in, keeps the intended account active, and makes re-login single-flight.

    Threads that saw `error.invalid.session.token` call `refresh(generation_they_used)`. The
    first one in logs in (paced to one login per second per API key) and switches back to the
    target account; the rest block on the lock and, finding a newer generation once they get
    it, return at once and replay with the new tokens.

    Requests take their tokens through `tokens()`, under the same lock: a fresh session is
    active on the platform's preferred account until the target account is restored, and a
    history request sent with it in between would read another account's rows.

    `call` is the client's request function; this class decides what to send, the client
    decides how (pacing, retries, token adoption).
    """

    def __init__(
        self,
        call: Callable[..., Any],
        *,
        api_key: str,
        identifier: str,
        password: str,
        encrypted_password: bool,
        login_limiter: RateLimiter,
        count: Callable[[str], None],
        logger: logging.Logger,
    ) -> None:
        self.state = SessionState()
        self._call = call
        self._api_key = api_key
        self._identifier = identifier
        self._password = password
        self._encrypted_password = encrypted_password
        self._login_limiter = login_limiter
        self._count = count
        self._logger = logger
        # Re-entrant: restoring the account issues a request that checks the session again.
        self._lock = threading.RLock()
        self.streaming_host: str | None = None
        self._encrypted_passwords: set[str] = set()  # each login sends a new one
        # Not the session lock: a thread reading an error answer must not wait for a login.
        self._secrets_lock = threading.Lock()

    def secrets(self) -> frozenset[str]:
        """Every credential and token this session has sent or received: what `redact` masks in
        text the server wrote."""
        with self._secrets_lock:
            encrypted = frozenset(self._encrypted_passwords)
        own = {self._api_key, self._identifier, self._password}
        return frozenset(own) | encrypted | self.state.tokens_seen()

    def __repr__(self) -> str:
        return f"SessionManager(identifier={self._identifier!r}, state={self.state!r})"

    # --- logging in ---

    def login(self) -> LoginSession:
        """Log in unconditionally (still one at a time, still paced)."""
        with self._lock:
            return self._login_and_restore()

    def tokens(self) -> TokenSnapshot:
        """The tokens to send: logs in first if there are none, and never hands out those of a
        login whose account is still being restored (that thread holds the lock meanwhile; the
        lock is re-entrant, so its own restoring request gets them)."""
        with self._lock:
            if not self.state.has_tokens:
                self._login_and_restore()
            return self.state.snapshot()

    def refresh(self, failed_generation: int) -> bool:
        """Replace the tokens of `failed_generation`; returns True if this call logged in."""
        with self._lock:
            if self.state.generation != failed_generation and self.state.has_tokens:
                return False
            self._logger.info("session expired (generation %d); logging in", failed_generation)
            self._login_and_restore()
            self._count("relogins")
            return True

    def _login_and_restore(self) -> LoginSession:
        attempt = 1
        while True:
            self._login_limiter.acquire()  # at most one POST /session per second per API key
            session = self._login_now()
            target = self.state.target_account_id
            if target is None or target == self.state.active_account_id:
                return session
            try:
                self._put_account(target, allow_relogin=False)
                return session
            except AuthenticationError as error:
                # The new session died before its first request: log in again, a few times.
                if error.error_code != SESSION_EXPIRED or attempt == RESTORE_ATTEMPTS:
                    raise
                self._logger.info("session expired while restoring the account; logging in")
                attempt += 1

    def _login_now(self) -> LoginSession:
        key_header = {API_KEY_HEADER: self._api_key}
        password, encrypted = self._password, False
        if self._encrypted_password:
            key = self._call(
                "GET", "/session/encryptionKey", headers=key_header, expect_key="encryptionKey",
                authenticated=False, retry_transient=True,
            )  # fmt: skip
            stamp = key.body.get("timeStamp")
            if isinstance(stamp, str) and stamp.isdigit():
                stamp = int(stamp)
            if not isinstance(stamp, int) or isinstance(stamp, bool):
                raise _malformed("GET", "/session/encryptionKey", key, "no integer timeStamp")
            password = encrypt_password(self._password, str(key.body["encryptionKey"]), stamp)
            with self._secrets_lock:
                self._encrypted_passwords.add(password)
            encrypted = True
        body = {
            "identifier": self._identifier,
            "password": password,
            "encryptedPassword": encrypted,
        }
        response = self._call(
            "POST", "/session", headers=key_header, json=body,
            authenticated=False, retry_transient=True, login=True,
        )  # fmt: skip
        try:
            session = LoginSession.model_validate(response.body)
        except ValidationError as error:
            reason = describe_validation_error(error)
            raise _malformed("POST", "/session", response, reason) from None
        self.state.active_account_id = session.current_account_id
        self.streaming_host = session.streaming_host
        self._count("logins")
        account = session.current_account_id
        self._logger.info(
            "logged in; active account %s", account and redact(account, self.secrets())
        )
        return session

    # --- accounts ---

    def switch_account(self, account_id: str) -> None:
        """Make `account_id` active now and after every future re-login. Nothing is sent when
        the session's active account already is `account_id` (the login's answer named it, or
        this session switched to it): the active account belongs to the session, which only
        this client holds."""
        self.tokens()  # log in first, so the login does not restore the account itself
        self.state.target_account_id = account_id
        if self.state.active_account_id == account_id:
            return
        self._put_account(account_id, allow_relogin=True)

    def _put_account(self, account_id: str, *, allow_relogin: bool) -> None:
        try:
            self._call(
                "PUT", "/session", json={"accountId": account_id},
                allow_relogin=allow_relogin, retry_transient=True,
            )  # fmt: skip
        except ApiError as error:
            # Switching to the already active account is refused with this code: success.
            if not (error.status == 400 and error.error_code == NOT_DIFFERENT_ACCOUNT):
                raise
        self.state.active_account_id = account_id

    def logout(self) -> None:
        if not self.state.has_tokens:
            return
        try:
            self._call("DELETE", "/session", allow_relogin=False, retry_transient=False)
        except AuthenticationError:
            self._logger.debug("session had already expired at logout")
        finally:
            self.state.clear()


def _malformed(method: str, path: str, response: Any, reason: str) -> MalformedResponseError:
    return MalformedResponseError.for_body(
        method, path, response.status, response.raw, reason, attempts=response.attempts
    )
