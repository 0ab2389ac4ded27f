"""Authentication of alert deliveries: a shared secret in the body, an optional HMAC header and
an optional IP allowlist.

TradingView cannot sign requests, so the body secret is the baseline; a sender that can sign
adds `X-Signature: sha256=<hex>` (HMAC-SHA256 of the raw body), required once
LEDGER_INTENTS_HMAC_SECRET is set. Comparisons are constant-time. A failure is counted by reason
and answered 401 with no detail; neither the secret sent nor the one expected ever reaches a log
line, an error or a stored row.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import threading
from collections import Counter
from dataclasses import dataclass, field

SIGNATURE_HEADER = "x-signature"
# Query parameters that look like credentials: a request carrying one is refused outright, so
# nobody builds an integration that leaks its secret into proxy and access logs.
SECRET_PARAMS = frozenset({"secret", "token", "key", "api_key", "apikey", "password", "passphrase"})


@dataclass
class AuthFailures:
    """Failed authentications by reason (`secret`, `signature`, `address`, `query_secret`)."""

    counts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, reason: str) -> None:
        with self._lock:
            self.counts[reason] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def secret_matches(sent: object, expected: str) -> bool:
    """Constant-time: both sides are hashed first, so even the length is not leaked."""
    if not isinstance(sent, str):
        return False
    return hmac.compare_digest(_digest(sent), _digest(expected))


def signature_matches(header: str | None, body: bytes, key: str) -> bool:
    if not header:
        return False
    scheme, _, value = header.strip().partition("=")
    if scheme.lower() != "sha256" or not value:
        return False
    expected = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), value.strip().lower().encode())


def sign(body: bytes, key: str) -> str:
    """The header value a sender puts in `X-Signature`."""
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


class Allowlist:
    """Addresses and CIDR blocks; empty allows every address."""

    def __init__(self, entries: tuple[str, ...]) -> None:
        self.networks = [ipaddress.ip_network(e, strict=False) for e in entries]

    def allows(self, address: str | None) -> bool:
        if not self.networks:
            return True
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in net for net in self.networks)


def secret_in_query(query: str) -> bool:
    from urllib.parse import parse_qsl

    names = {k.lower() for k, _ in parse_qsl(query, keep_blank_values=True)}
    return bool(names & SECRET_PARAMS)
