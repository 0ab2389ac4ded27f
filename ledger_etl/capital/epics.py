"""Which epics the broker knows: GET /markets?epics=A,B (at most 50 per call, reference §7).

One unknown epic fails the whole call with 404 `error.not-found.epic`; the batch is halved until
the unknown ones stand alone, so they are named and the rest confirmed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import ApiError

if TYPE_CHECKING:
    from .client import CapitalClient

MARKETS_BATCH = 50
NOT_FOUND = "error.not-found.epic"


def unknown_epics(client: CapitalClient, epics: Sequence[str]) -> list[str]:
    """The epics of `epics` the broker answers 404 `error.not-found.epic` for, in order."""
    chosen = list(dict.fromkeys(epics))
    unknown: list[str] = []
    for start in range(0, len(chosen), MARKETS_BATCH):
        _check(client, chosen[start : start + MARKETS_BATCH], unknown)
    return unknown


def _check(client: CapitalClient, batch: list[str], unknown: list[str]) -> None:
    try:
        client.request("GET", "/markets", params={"epics": ",".join(batch)})
    except ApiError as error:
        if error.status != 404 or error.error_code != NOT_FOUND:
            raise
        if len(batch) == 1:
            unknown.append(batch[0])
            return
        half = len(batch) // 2
        _check(client, batch[:half], unknown)
        _check(client, batch[half:], unknown)
