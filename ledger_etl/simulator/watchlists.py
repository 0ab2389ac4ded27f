"""Watchlists that clients can change: POST, PUT and DELETE of `/watchlists` (reference §8).

The catalog's watchlists are where every simulator starts; the book holds the lists as they are
now, so a client that records membership history has real changes to record. Rules follow the
vendor examples: a name of 1..20 characters (`error.size.createwatchlistrequest.name`); unknown
epics in a create are skipped and answered with `SUCCESS_NOT_ALL_INSTRUMENTS_ADDED`; adding an
unknown epic, or removing one that is not in the list, is 404 `error.not-found.epic`; deleting an
unknown list is 404 `error.not-found.watchlist`, reading one 404 `error.invalid.watchlist`.
Inferred (no sample shows them): adding a member twice succeeds and changes nothing; editing an
unknown list is 404 `error.not-found.watchlist`; a list that is not editable (or deleteable)
refuses with 400 `error.watchlist.not-editable` (`.not-deleteable`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ledger_etl.simulator.catalog import INSTRUMENTS, WATCHLISTS, Watchlist
from ledger_etl.simulator.errors import ApiError

if TYPE_CHECKING:
    from ledger_etl.simulator.app import Handler, Reply, Request, Simulator

NAME_LENGTH = (1, 20)
FIRST_NEW_ID = 123_458  # the id the vendor example gives the first list a client creates


class WatchlistBook:
    """The current watchlists, in creation order; safe to use from many request threads."""

    def __init__(self, initial: Iterable[Watchlist] = WATCHLISTS) -> None:
        self._lock = threading.Lock()
        self._lists: dict[str, Watchlist] = {w.id: w for w in initial}
        self._next_id = max([FIRST_NEW_ID, *(int(i) + 1 for i in self._lists if i.isdigit())])

    def all(self) -> tuple[Watchlist, ...]:
        with self._lock:
            return tuple(self._lists.values())

    def create(self, name: Any, epics: Any) -> dict[str, str]:
        if not isinstance(name, str) or not NAME_LENGTH[0] <= len(name) <= NAME_LENGTH[1]:
            raise ApiError(400, "error.size.createwatchlistrequest.name")
        wanted = [] if epics is None else epics
        if not isinstance(wanted, list) or not all(isinstance(e, str) for e in wanted):
            raise ApiError(400, "error.invalid.epics")  # inferred: no sample shows this case
        known = tuple(dict.fromkeys(e for e in wanted if e in INSTRUMENTS))
        with self._lock:
            new_id = str(self._next_id)
            self._next_id += 1
            self._lists[new_id] = Watchlist(new_id, name, known)
        complete = len(known) == len(set(wanted))
        return {
            "watchlistId": new_id,
            "status": "SUCCESS" if complete else "SUCCESS_NOT_ALL_INSTRUMENTS_ADDED",
        }

    def add(self, watchlist_id: str, epic: Any) -> None:
        if not isinstance(epic, str) or epic not in INSTRUMENTS:
            raise ApiError(404, "error.not-found.epic")
        with self._lock:
            current = self._editable(watchlist_id)
            if epic not in current.epics:
                self._lists[watchlist_id] = replace(current, epics=(*current.epics, epic))

    def remove(self, watchlist_id: str, epic: str) -> None:
        with self._lock:
            current = self._editable(watchlist_id)
            if epic not in current.epics:
                raise ApiError(404, "error.not-found.epic")
            kept = tuple(e for e in current.epics if e != epic)
            self._lists[watchlist_id] = replace(current, epics=kept)

    def delete(self, watchlist_id: str) -> None:
        with self._lock:
            current = self._lists.get(watchlist_id)
            if current is None:
                raise ApiError(404, "error.not-found.watchlist")
            if not current.deleteable:
                raise ApiError(400, "error.watchlist.not-deleteable")
            del self._lists[watchlist_id]

    def _editable(self, watchlist_id: str) -> Watchlist:
        current = self._lists.get(watchlist_id)
        if current is None:
            raise ApiError(404, "error.not-found.watchlist")
        if not current.editable:
            raise ApiError(400, "error.watchlist.not-editable")
        return current


# -- handlers -----------------------------------------------------------------------------------
def _reply(body: Any) -> Reply:
    from ledger_etl.simulator.app import Reply

    return Reply(200, body)


def _auth(sim: Simulator, request: Request) -> None:
    request.session = sim.sessions.authenticate(
        request.headers.get("cst"), request.headers.get("x-security-token")
    )


def get_watchlists(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    return _reply(sim.market.watchlists(sim.watchlists.all()))


def get_watchlist(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    offset = sim.world.utc_offset_hours(sim.clock.now())
    return _reply(
        sim.market.watchlist(
            request.params["_path_watchlistId"],
            sim.clock.now(),
            offset_hours=offset,
            lists=sim.watchlists.all(),
        )
    )


def post_watchlist(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    body = request.json()
    return _reply(sim.watchlists.create(body.get("name"), body.get("epics")))


def put_watchlist(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    sim.watchlists.add(request.params["_path_watchlistId"], request.json().get("epic"))
    return _reply({"status": "SUCCESS"})


def delete_watchlist_market(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    sim.watchlists.remove(request.params["_path_watchlistId"], request.params["_path_epic"])
    return _reply({"status": "SUCCESS"})


def delete_watchlist(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    sim.watchlists.delete(request.params["_path_watchlistId"])
    return _reply({"status": "SUCCESS"})


ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/watchlists"): get_watchlists,
    ("GET", "/watchlists/{watchlistId}"): get_watchlist,
    ("POST", "/watchlists"): post_watchlist,
    ("PUT", "/watchlists/{watchlistId}"): put_watchlist,
    ("DELETE", "/watchlists/{watchlistId}/{epic}"): delete_watchlist_market,
    ("DELETE", "/watchlists/{watchlistId}"): delete_watchlist,
}
