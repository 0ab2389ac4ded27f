"""Where a ledger's rows come from: the API URL and a fingerprint of the world or login behind it.

A ledger holds one source per account. The bundled simulator is one source per world (its seed,
history start, accounts, volume and the generator's revision: whatever changes the rows), so two
simulated worlds under the same account ids never mix in one ledger; the real API is one source
per URL and login.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

BUNDLED_URL = "bundled-simulator"


@dataclass(frozen=True)
class DataSource:
    url: str  # the API URL, or BUNDLED_URL
    fingerprint: str  # 16 hex digits
    detail: dict[str, Any] = field(default_factory=dict, compare=False)  # the bundled world

    def describe(self) -> str:
        if self.url == BUNDLED_URL:
            world = self.detail
            return (
                f"the bundled simulator (seed {world.get('seed')}, history from "
                f"{world.get('start')}, {world.get('accounts')} accounts; fingerprint "
                f"{self.fingerprint})"
            )
        return f"{self.url} (login fingerprint {self.fingerprint})"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def api_source(base_url: str, identifier: str) -> DataSource:
    """A real (or separately served) API: its URL and the login, hashed (never stored plain)."""
    url = base_url.rstrip("/")
    return DataSource(url, _digest(f"{url}\n{identifier}"))


def bundled_source(world: dict[str, Any]) -> DataSource:
    """The bundled simulator serving `world` (a JSON-able description of everything that
    changes its rows)."""
    canonical = json.dumps(world, sort_keys=True, separators=(",", ":"))
    return DataSource(BUNDLED_URL, _digest(canonical), dict(world))
