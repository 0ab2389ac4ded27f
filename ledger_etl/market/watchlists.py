"""Watchlists and their membership history.

Each poll is a snapshot of every list at one server instant (`capital.watchlists`). A market
that joins a list opens a stretch `[valid_from, valid_to)` at the instant of the first poll that
saw it; one that leaves closes its stretch at the first poll that no longer saw it. The broker
gives no time for an edit, so the change is known to lie between two polls; `watchlist_polls`
records every poll, which bounds it. Nothing is written for a list that did not change, a list
the poll could not read is left as it was, and a poll older than the last recorded one is
refused (history only moves forward).

`watchlist_epics(engine, name)` turns a stored list into an instrument universe, for the
stream, sentiment polls and chart templates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, and_, func, insert, or_, select, update

from ledger_etl.capital.client import CapitalClient
from ledger_etl.capital.models import dump_row
from ledger_etl.capital.watchlists import ObservedWatchlist, WatchlistsSnapshot, fetch_watchlists
from ledger_etl.errors import InputError
from ledger_etl.ledger import schema as s
from ledger_etl.ledger.db import upgrade
from ledger_etl.ledger.ingest import finish_run, start_run
from ledger_etl.market.locks import serialize_writers

RUN_KIND = "watchlists"


class WatchlistNotFound(InputError):
    """A watchlist name (or id) the ledger does not hold, or holds more than once."""


@dataclass(frozen=True)
class WatchlistChanges:
    run_id: str
    observed_at: datetime
    watchlists: int = 0
    added: list[tuple[str, str]] = field(default_factory=list)  # (watchlist id, epic)
    removed: list[tuple[str, str]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)
    stale: bool = False  # older than the last recorded poll: nothing was written


@dataclass(frozen=True)
class StoredWatchlist:
    watchlist_id: str
    name: str
    epics: list[str]
    first_seen_at: datetime
    last_seen_at: datetime
    deleted_at: datetime | None


@dataclass(frozen=True)
class MemberStretch:
    watchlist_id: str
    epic: str
    valid_from: datetime
    valid_to: datetime | None


def membership_changes(
    current: Iterable[str], observed: Iterable[str]
) -> tuple[list[str], list[str]]:
    """(joined, left): the pure core of a poll, in the observed and stored orders."""
    before, after = list(current), list(observed)
    return [e for e in after if e not in before], [e for e in before if e not in after]


def record_watchlists(
    engine: Engine, snapshot: WatchlistsSnapshot, run_id: str
) -> WatchlistChanges:
    """Apply one snapshot to the stored lists and membership history, in one transaction."""
    at, now = snapshot.observed_at, datetime.now(UTC)
    with engine.begin() as conn:
        serialize_writers(conn, "watchlists")
        last = conn.execute(select(func.max(s.watchlist_polls.c.observed_at))).scalar()
        if last is not None and at < last:
            return WatchlistChanges(run_id, at, stale=True, unreadable=snapshot.unreadable)
        changes = WatchlistChanges(
            run_id, at, len(snapshot.watchlists), unreadable=snapshot.unreadable
        )
        seen = set(snapshot.unreadable)
        for observed in snapshot.watchlists:
            seen.add(observed.summary.id)
            _apply(conn, observed, at, run_id, changes)
        gone = conn.execute(
            select(s.watchlists.c.watchlist_id).where(s.watchlists.c.deleted_at.is_(None))
        ).scalars()
        for watchlist_id in [w for w in gone if w not in seen]:
            conn.execute(update(s.watchlists).where(s.watchlists.c.watchlist_id == watchlist_id)
                         .values(deleted_at=at))  # fmt: skip
            for epic in _open_members(conn, watchlist_id):
                _close(conn, watchlist_id, epic, at, run_id)
                changes.removed.append((watchlist_id, epic))
            changes.deleted.append(watchlist_id)
        conn.execute(insert(s.watchlist_polls).values(
            observed_at=at, run_id=run_id, watchlists=len(snapshot.watchlists),
            added=len(changes.added), removed=len(changes.removed),
            unreadable=dict(snapshot.unreadable), recorded_at=now,
        ))  # fmt: skip
    return changes


def _apply(
    conn: Connection, observed: ObservedWatchlist, at: datetime, run_id: str,
    changes: WatchlistChanges,
) -> None:  # fmt: skip
    summary, table = observed.summary, s.watchlists
    values = {
        "name": summary.name, "editable": summary.editable, "deleteable": summary.deleteable,
        "default_system": summary.default_system_watchlist, "last_seen_at": at, "deleted_at": None,
        "raw": dump_row(summary.model_dump(by_alias=True, mode="json")),
    }  # fmt: skip
    key = table.c.watchlist_id == summary.id
    if conn.execute(select(table.c.watchlist_id).where(key)).first() is None:
        conn.execute(insert(table).values(watchlist_id=summary.id, first_seen_at=at, **values))
        changes.created.append(summary.id)
    else:
        conn.execute(update(table).where(key).values(**values))
    joined, left = membership_changes(_open_members(conn, summary.id), observed.epics)
    for epic in joined:
        conn.execute(insert(s.watchlist_members).values(
            watchlist_id=summary.id, epic=epic, valid_from=at, added_run_id=run_id,
        ))  # fmt: skip
        changes.added.append((summary.id, epic))
    for epic in left:
        _close(conn, summary.id, epic, at, run_id)
        changes.removed.append((summary.id, epic))


def _open_members(conn: Connection, watchlist_id: str) -> list[str]:
    m = s.watchlist_members
    query = (
        select(m.c.epic)
        .where(and_(m.c.watchlist_id == watchlist_id, m.c.valid_to.is_(None)))
        .order_by(m.c.valid_from, m.c.id)
    )
    return list(conn.execute(query).scalars())


def _close(conn: Connection, watchlist_id: str, epic: str, at: datetime, run_id: str) -> None:
    m = s.watchlist_members
    where = and_(m.c.watchlist_id == watchlist_id, m.c.epic == epic, m.c.valid_to.is_(None))
    conn.execute(update(m).where(where).values(valid_to=at, removed_run_id=run_id))


def poll_watchlists(client: CapitalClient, engine: Engine) -> WatchlistChanges:
    """One poll: read every watchlist, record what changed, record the run."""
    upgrade(engine)
    run_id = start_run(engine, RUN_KIND, {})
    try:
        changes = record_watchlists(engine, fetch_watchlists(client), run_id)
    except Exception as error:
        finish_run(engine, run_id, "failed", {"error": str(error)[:500]})
        raise
    finish_run(engine, run_id, "succeeded", {
        "observed_at": changes.observed_at.isoformat(), "watchlists": changes.watchlists,
        "added": len(changes.added), "removed": len(changes.removed), "stale": changes.stale,
        "unreadable": changes.unreadable,
    })  # fmt: skip
    return changes


# -- reads --------------------------------------------------------------------------------------
def _resolve(conn: Connection, name: str, at: datetime | None) -> str:
    """The id of the list called `name` (or with id `name`) that existed at `at` (now: None)."""
    w = s.watchlists
    alive = w.c.deleted_at.is_(None) if at is None else and_(
        w.c.first_seen_at <= at, or_(w.c.deleted_at.is_(None), w.c.deleted_at > at)
    )  # fmt: skip
    rows = conn.execute(select(w.c.watchlist_id, w.c.name).where(alive)).all()
    by_id = [r.watchlist_id for r in rows if r.watchlist_id == name]
    matches = by_id or [r.watchlist_id for r in rows if r.name == name]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise WatchlistNotFound(
            f"{len(matches)} watchlists are called {name!r} (ids {', '.join(matches)}); "
            "give the id instead"
        )
    known = ", ".join(sorted(repr(r.name) for r in rows)) or "none; run `ledger-etl watchlists`"
    raise WatchlistNotFound(f"no watchlist {name!r} in the ledger; it knows {known}")


def watchlist_epics(engine: Engine, name: str, at: datetime | None = None) -> list[str]:
    """The members of watchlist `name` (a name or an id) now, or at instant `at`, in the order
    they joined: an instrument universe (for the stream, sentiment, chart templates)."""
    m = s.watchlist_members
    with engine.connect() as conn:
        watchlist_id = _resolve(conn, name, at)
        current = m.c.valid_to.is_(None) if at is None else and_(
            m.c.valid_from <= at, or_(m.c.valid_to.is_(None), m.c.valid_to > at)
        )  # fmt: skip
        query = (
            select(m.c.epic)
            .where(and_(m.c.watchlist_id == watchlist_id, current))
            .order_by(m.c.valid_from, m.c.id)
        )
        return list(dict.fromkeys(conn.execute(query).scalars()))


def stored_watchlists(engine: Engine, include_deleted: bool = False) -> list[StoredWatchlist]:
    w = s.watchlists
    query = select(w).order_by(w.c.first_seen_at, w.c.watchlist_id)
    if not include_deleted:
        query = query.where(w.c.deleted_at.is_(None))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        return [
            StoredWatchlist(r.watchlist_id, r.name, _open_members(conn, r.watchlist_id),
                            r.first_seen_at, r.last_seen_at, r.deleted_at)
            for r in rows
        ]  # fmt: skip


def membership_history(engine: Engine, name: str | None = None) -> list[MemberStretch]:
    """Every stretch of membership (of one list, by name or id, or of all), oldest first."""
    m = s.watchlist_members
    query = select(m).order_by(m.c.watchlist_id, m.c.valid_from, m.c.id)
    with engine.connect() as conn:
        if name is not None:
            w = s.watchlists
            ids = conn.execute(
                select(w.c.watchlist_id).where(or_(w.c.watchlist_id == name, w.c.name == name))
            ).scalars().all()  # fmt: skip
            if not ids:
                raise WatchlistNotFound(f"no watchlist {name!r} in the ledger")
            query = query.where(m.c.watchlist_id.in_(ids))
        return [
            MemberStretch(r.watchlist_id, r.epic, r.valid_from, r.valid_to)
            for r in conn.execute(query)
        ]


def all_member_epics(engine: Engine) -> list[str]:
    """The union of every current list's members: the default sentiment universe."""
    epics: dict[str, None] = {}
    for stored in stored_watchlists(engine):
        epics.update(dict.fromkeys(stored.epics))
    return list(epics)
