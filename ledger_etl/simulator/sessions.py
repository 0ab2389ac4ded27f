"""Sessions, logins and rate limits of the simulated API.

Tokens travel in `CST` / `X-SECURITY-TOKEN` headers and stay valid for `idle_seconds` after their
last use (10 minutes on Capital.com), optionally capped at `max_age_seconds` after creation.
Rate limits are sliding one-second windows counted on the simulator's clock.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ledger_etl.simulator.clock import Clock
from ledger_etl.simulator.errors import ApiError


@dataclass
class Session:
    cst: str
    security_token: str
    client_id: str
    account_id: str
    created: float
    last_used: float
    requests: int = 0


class SessionStore:
    def __init__(
        self, clock: Clock, idle_seconds: float = 600.0, max_age_seconds: float | None = None
    ) -> None:
        self.clock = clock
        self.idle_seconds = idle_seconds
        self.max_age_seconds = max_age_seconds
        self._by_cst: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, client_id: str, account_id: str) -> Session:
        now = self.clock.timestamp()
        session = Session(
            secrets.token_urlsafe(24), secrets.token_urlsafe(24), client_id, account_id, now, now
        )
        with self._lock:
            self._by_cst[session.cst] = session
        return session

    def authenticate(self, cst: str | None, token: str | None) -> Session:
        """The session for these headers, refreshed; ApiError when missing, unknown or expired."""
        if not cst:
            raise ApiError(400, "error.null.client.token")
        if not token:
            raise ApiError(400, "error.null.accountId")
        now = self.clock.timestamp()
        with self._lock:
            session = self._by_cst.get(cst)
            if session is None or not secrets.compare_digest(session.security_token, token):
                raise ApiError(401, "error.invalid.session.token")
            expired = now - session.last_used > self.idle_seconds or (
                self.max_age_seconds is not None and now - session.created > self.max_age_seconds
            )
            if expired:
                del self._by_cst[cst]
                raise ApiError(401, "error.invalid.session.token")
            session.last_used = now
            session.requests += 1
            return session

    def is_valid(self, cst: str | None, token: str | None) -> bool:
        """Whether these tokens would authenticate now, without counting as a use (the stream
        checks its session on every tick; only messages the client sends keep it alive)."""
        if not cst or not token:
            return False
        now = self.clock.timestamp()
        with self._lock:
            session = self._by_cst.get(cst)
            if session is None or not secrets.compare_digest(session.security_token, token):
                return False
            return not (
                now - session.last_used > self.idle_seconds
                or (
                    self.max_age_seconds is not None
                    and now - session.created > self.max_age_seconds
                )
            )

    def end(self, cst: str) -> None:
        with self._lock:
            self._by_cst.pop(cst, None)

    def expire_all(self) -> int:
        with self._lock:
            count = len(self._by_cst)
            self._by_cst.clear()
            return count

    def active_count(self) -> int:
        with self._lock:
            return len(self._by_cst)


@dataclass
class SlidingWindowLimiter:
    """At most `limit` accepted events per key in any `window` seconds of the clock."""

    clock: Clock
    limit: int
    window: float = 1.0
    _events: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, key: str) -> bool:
        if self.limit <= 0:
            return True
        now = self.clock.timestamp()
        with self._lock:
            events = self._events[key]
            while events and now - events[0] >= self.window:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            return True


class PasswordDecryptor:
    """The RSA key pair behind `GET /session/encryptionKey` (PKCS#1 v1.5, 2048 bits)."""

    def __init__(self) -> None:
        self._private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        der = self._private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key_b64 = base64.b64encode(der).decode("ascii")

    def decrypt(self, encrypted_b64: str) -> tuple[str, int] | None:
        """(password, timestamp) from `base64(rsa(base64(password|timestamp)))`, None if bad."""
        try:
            cipher = base64.b64decode(encrypted_b64, validate=True)
            inner = self._private.decrypt(cipher, padding.PKCS1v15())
            plain = base64.b64decode(inner, validate=True).decode("utf-8")
            password, _, stamp = plain.rpartition("|")
            return password, int(stamp)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
