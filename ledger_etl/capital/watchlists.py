"""Watchlists: GET/POST/PUT/DELETE /watchlists (reference §8).

`fetch_watchlists` reads the list of watchlists and then each one's markets: a snapshot of every
list's membership at one server instant. A list that vanishes between the two reads (deleted
meanwhile, 404 `error.invalid.watchlist`) is reported as unreadable, so that whoever records
membership history leaves it as it was instead of inventing removals. Edits are writes: the
client's policy sends them once and never retries them on a transient failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import Field

from .errors import ApiError, MalformedResponseError
from .models import IdText, ModelT, RowProblem, _parse_row, _Payload
from .sentiment import observed_now

if TYPE_CHECKING:
    from .client import CapitalClient

INVALID_WATCHLIST = "error.invalid.watchlist"


class WatchlistSummary(_Payload):
    """An element of `GET /watchlists`."""

    id: IdText = Field(min_length=1)
    name: str
    editable: bool | None = None
    deleteable: bool | None = None
    default_system_watchlist: bool | None = Field(default=None, alias="defaultSystemWatchlist")


class WatchlistMarket(_Payload):
    """A market of `GET /watchlists/{id}` (the market item of `/markets`); only the epic is
    needed here, the other keys are kept as they came."""

    epic: str = Field(min_length=1)
    instrument_name: str | None = Field(default=None, alias="instrumentName")
    instrument_type: str | None = Field(default=None, alias="instrumentType")


@dataclass(frozen=True)
class ObservedWatchlist:
    summary: WatchlistSummary
    epics: tuple[str, ...]  # in the order the API lists them


@dataclass(frozen=True)
class WatchlistsSnapshot:
    observed_at: datetime
    watchlists: list[ObservedWatchlist]
    unreadable: dict[str, str] = field(default_factory=dict)  # id -> reason
    problems: list[RowProblem] = field(default_factory=list)
    requests: int = 0


def _path(*parts: str) -> str:
    return "/watchlists" + "".join("/" + quote(p, safe="") for p in parts)


def _rows(response: Any, key: str, path: str) -> list[Any]:
    rows = response.body[key]
    if not isinstance(rows, list):
        raise MalformedResponseError.for_body(
            "GET", path, response.status, response.raw, f"{key} is not a list"
        )
    return rows


def _parse_rows(model: type[ModelT], rows: list[Any]) -> tuple[list[ModelT], list[RowProblem]]:
    found: list[ModelT] = []
    problems: list[RowProblem] = []
    for row in rows:
        parsed = _parse_row(model, row)
        if isinstance(parsed, RowProblem):
            problems.append(parsed)
        else:
            found.append(parsed)
    return found, problems


def list_watchlists(client: CapitalClient) -> tuple[list[WatchlistSummary], list[RowProblem]]:
    response = client.request("GET", "/watchlists", expect_key="watchlists")
    return _parse_rows(WatchlistSummary, _rows(response, "watchlists", "/watchlists"))


def watchlist_markets(
    client: CapitalClient, watchlist_id: str
) -> tuple[list[WatchlistMarket], list[RowProblem]]:
    path = _path(watchlist_id)
    response = client.request("GET", path, expect_key="markets")
    return _parse_rows(WatchlistMarket, _rows(response, "markets", path))


def fetch_watchlists(client: CapitalClient) -> WatchlistsSnapshot:
    """Every watchlist with its members, stamped with the server's time before the reads."""
    observed_at = observed_now(client)
    summaries, problems = list_watchlists(client)
    observed: list[ObservedWatchlist] = []
    unreadable: dict[str, str] = {}
    for summary in summaries:
        try:
            markets, bad = watchlist_markets(client, summary.id)
        except ApiError as error:
            if error.status != 404:
                raise
            unreadable[summary.id] = str(error)
            continue
        if bad:
            # A member we cannot name would look like a removal: keep the list as it was.
            problems.extend(bad)
            unreadable[summary.id] = f"{len(bad)} market row(s) without a usable epic"
            continue
        epics = tuple(dict.fromkeys(m.epic for m in markets))
        observed.append(ObservedWatchlist(summary, epics))
    requests = 2 + len(summaries)
    return WatchlistsSnapshot(observed_at, observed, unreadable, problems, requests)


@dataclass(frozen=True)
class CreatedWatchlist:
    watchlist_id: str
    status: str  # SUCCESS | SUCCESS_NOT_ALL_INSTRUMENTS_ADDED

    @property
    def all_added(self) -> bool:
        return self.status == "SUCCESS"


def create_watchlist(client: CapitalClient, name: str, epics: Sequence[str]) -> CreatedWatchlist:
    response = client.request(
        "POST", "/watchlists", json={"name": name, "epics": list(epics)}, expect_key="watchlistId"
    )
    return CreatedWatchlist(str(response.body["watchlistId"]), str(response.body.get("status")))


def add_to_watchlist(client: CapitalClient, watchlist_id: str, epic: str) -> None:
    client.request("PUT", _path(watchlist_id), json={"epic": epic})


def remove_from_watchlist(client: CapitalClient, watchlist_id: str, epic: str) -> None:
    client.request("DELETE", _path(watchlist_id, epic))


def delete_watchlist(client: CapitalClient, watchlist_id: str) -> None:
    client.request("DELETE", _path(watchlist_id))
