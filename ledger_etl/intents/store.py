"""The intents table: the idempotency record, the durable queue and the state of each intent.

States: RECEIVED -> VALIDATED | REJECTED; VALIDATED -> SUBMITTED | REJECTED (risk caps) |
DRY_RUN (validated and recorded, not sent); SUBMITTED -> ACCEPTED | REJECTED | UNKNOWN |
VALIDATED (a 429: the broker refused without dealing, so the intent is queued again);
UNKNOWN -> ACCEPTED | REJECTED once recovered. SUBMITTED is written and committed *before* the
POST: an intent found SUBMITTED without a deal reference after a restart may or may not have
reached the broker, and is recovered from the broker's state, never posted again.

Every transition is a guarded update (`WHERE state = <from>`), so two workers can never both
move one intent, and is appended to the trading change log under `intent:<id>`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError

from ledger_etl.ledger.schema import trade_intents
from ledger_etl.trading import changelog
from ledger_etl.trading.lifecycle import Transition

ALLOWED = {
    None: {"RECEIVED"},
    "RECEIVED": {"VALIDATED", "REJECTED"},
    "VALIDATED": {"SUBMITTED", "REJECTED", "DRY_RUN"},
    "SUBMITTED": {"ACCEPTED", "REJECTED", "UNKNOWN", "VALIDATED"},
    "UNKNOWN": {"ACCEPTED", "REJECTED"},
}
FINAL = frozenset({"ACCEPTED", "REJECTED", "DRY_RUN"})
T = TypeVar("T")
# One writer at a time in this process: many request threads contending for SQLite's write
# lock each sleep in the driver's busy handler (up to 100 ms a turn); queueing here costs none.
# On SQLite every transaction begins IMMEDIATE (it takes the write lock), reads included, so
# the reads of this process queue here too (`reading`); on PostgreSQL reads never wait.
_WRITE = threading.RLock()


def reading(engine: Engine) -> Any:
    """The lock a read of `engine` must hold in this process (none on PostgreSQL)."""
    return _WRITE if engine.dialect.name == "sqlite" else nullcontext()


@contextmanager
def connect(engine: Engine) -> Iterator[Connection]:
    """A connection for reads, queued behind this process's writers on SQLite."""
    with reading(engine), engine.connect() as conn:
        yield conn


def writing() -> Any:
    """The lock around a transaction of another module (the trading lifecycle) in this process."""
    return _WRITE


class StateConflict(Exception):
    """The intent was not in the expected state: another worker moved it first."""


def retrying(engine: Engine, work: Callable[[Connection], T], attempts: int = 8) -> T:
    """Run `work` in one transaction; a concurrent change-log writer or a lock timeout makes
    the whole transaction run again (nothing of a failed one was kept)."""
    for attempt in range(attempts):
        try:
            with _WRITE, engine.begin() as conn:
                return work(conn)
        except (IntegrityError, OperationalError):
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _log(
    conn: Connection,
    account_id: str,
    intent_id: str,
    before: str | None,
    after: str,
    at: datetime,
    detail: dict[str, Any],
) -> None:
    t = Transition(
        f"intent:{intent_id}", "intent", after.lower(), before, after, at, "intent", detail
    )
    changelog.append(conn, account_id, [t], at)


@dataclass(frozen=True)
class Created:
    row: Any
    created: bool  # False: the key was there already (a repeated delivery)


def create(
    engine: Engine,
    *,
    account_id: str,
    key: str,
    payload_sha256: str,
    payload: dict[str, Any],
    epic: str | None,
    action: str,
    mode: str,
    at: datetime,
) -> Created:
    """Insert the intent as RECEIVED, or return the row already stored under the key."""
    for _ in range(8):
        found = get_by_key(engine, account_id, key)
        if found is not None:
            return Created(found, False)
        intent_id = str(uuid.uuid4())
        row = {
            "id": intent_id,
            "account_id": account_id,
            "idem_key": key,
            "payload_sha256": payload_sha256,
            "payload": payload,
            "epic": epic,
            "action": action,
            "mode": mode,
            "state": "RECEIVED",
            "violations": [],
            "deal_ids": [],
            "attempts": 0,
            "steps": [{"state": "RECEIVED", "at": at.isoformat()}],
            "received_at": at,
            "updated_at": at,
        }
        try:
            with _WRITE, engine.begin() as conn:
                conn.execute(insert(trade_intents), row)
                _log(conn, account_id, intent_id, None, "RECEIVED", at, {"key": key})
        except (IntegrityError, OperationalError):
            continue  # the key (a concurrent delivery) or the change log's head: look again
        return Created(get(engine, intent_id), True)
    raise RuntimeError("could not record the intent after 8 attempts")


def record(
    engine: Engine,
    *,
    account_id: str,
    key: str,
    payload_sha256: str,
    payload: dict[str, Any],
    epic: str | None,
    action: str,
    mode: str,
    at: datetime,
    outcome: tuple[str, datetime, dict[str, Any]],
) -> Created:
    """Receive and judge in one transaction: the intent is inserted as RECEIVED and at once
    moved to its judged state `outcome` = (state, when, values), both steps in the change log;
    or, when the key is stored already, the stored row is returned and nothing is written.

    For an intent judged without asking the broker (its market's rules were at hand): the
    acknowledgement then waits for one short transaction and nothing else."""
    after, judged_at, values = outcome
    if after not in ALLOWED["RECEIVED"]:
        raise ValueError(f"transition RECEIVED -> {after} is not in the table")
    intent_id = str(uuid.uuid4())
    row = {
        "id": intent_id,
        "account_id": account_id,
        "idem_key": key,
        "payload_sha256": payload_sha256,
        "payload": payload,
        "epic": epic,
        "action": action,
        "mode": mode,
        "state": after,
        "violations": [],
        "deal_ids": [],
        "attempts": 0,
        "steps": [
            {"state": "RECEIVED", "at": at.isoformat()},
            {"state": after, "at": judged_at.isoformat()},
        ],
        "received_at": at,
        "updated_at": judged_at,
        **values,
    }
    detail = {k: v for k, v in values.items() if k == "reason"}

    def work(conn: Connection) -> Created:
        c = trade_intents.c
        made = conn.execute(_insert_new(conn).returning(*trade_intents.c), row).first()
        if made is None:  # a repeated delivery, maybe concurrent: the first one's row
            found = conn.execute(
                select(trade_intents).where(c.account_id == account_id, c.idem_key == key)
            ).first()
            if found is None:  # pragma: no cover - the conflicting row vanished
                raise RuntimeError("the intent's key conflicted with a row that is gone")
            return Created(found, False)
        t = [
            Transition(f"intent:{intent_id}", "intent", "received", None, "RECEIVED", at,
                       "intent", {"key": key}),
            Transition(f"intent:{intent_id}", "intent", after.lower(), "RECEIVED", after,
                       judged_at, "intent", detail),
        ]  # fmt: skip
        changelog.append(conn, account_id, t, judged_at)
        return Created(made, True)

    return retrying(engine, work)


def _insert_new(conn: Connection) -> Any:
    """INSERT that does nothing when the key is there (a concurrent insert of the same key on
    PostgreSQL waits for the other transaction, then does nothing if it committed)."""
    if conn.dialect.name == "postgresql":
        return pg_insert(trade_intents).on_conflict_do_nothing(
            index_elements=["account_id", "idem_key"]
        )
    return sqlite_insert(trade_intents).on_conflict_do_nothing(
        index_elements=["account_id", "idem_key"]
    )


def get(engine: Engine, intent_id: str) -> Any:
    with connect(engine) as conn:
        return conn.execute(select(trade_intents).where(trade_intents.c.id == intent_id)).first()


def get_by_key(engine: Engine, account_id: str, key: str) -> Any:
    c = trade_intents.c
    with connect(engine) as conn:
        return conn.execute(
            select(trade_intents).where(c.account_id == account_id, c.idem_key == key)
        ).first()


def move(
    engine: Engine, intent_id: str, before: str, after: str, at: datetime, **values: Any
) -> Any:
    """Move the intent from `before` to `after` with `values`; StateConflict if it was not in
    `before` any more. Returns the stored row."""
    if after not in ALLOWED.get(before, set()):
        raise ValueError(f"transition {before} -> {after} is not in the table")

    def work(conn: Connection) -> Any:
        c = trade_intents.c
        row = conn.execute(select(trade_intents).where(c.id == intent_id)).first()
        if row is None or row.state != before:
            raise StateConflict(f"intent {intent_id} is {row.state if row else 'missing'}")
        steps = [*row.steps, {"state": after, "at": at.isoformat()}]
        done = conn.execute(
            update(trade_intents)
            .where(c.id == intent_id, c.state == before)
            .values(state=after, steps=steps, updated_at=at, **values)
        )
        if done.rowcount != 1:
            raise StateConflict(f"intent {intent_id} moved concurrently")
        detail = {k: v for k, v in values.items() if k in ("reason", "deal_reference")}
        _log(conn, row.account_id, intent_id, before, after, at, detail)
        return conn.execute(select(trade_intents).where(c.id == intent_id)).first()

    return retrying(engine, work)


def move_many(
    engine: Engine, rows: list[Any], before: str, after: str, at: datetime, **values: Any
) -> list[str]:
    """Move each of `rows` (as read, in state `before`) to `after` with `values`, in one
    transaction; a row another worker moved meanwhile is left alone. Returns the ids moved."""
    if after not in ALLOWED.get(before, set()):
        raise ValueError(f"transition {before} -> {after} is not in the table")
    detail = {k: v for k, v in values.items() if k == "reason"}

    def work(conn: Connection) -> list[str]:
        c = trade_intents.c
        moved: dict[str, list[Transition]] = {}
        for row in rows:
            steps = [*row.steps, {"state": after, "at": at.isoformat()}]
            done = conn.execute(
                update(trade_intents)
                .where(c.id == row.id, c.state == before)
                .values(state=after, steps=steps, updated_at=at, **values)
            )
            if done.rowcount == 1:
                moved.setdefault(row.account_id, []).append(
                    Transition(f"intent:{row.id}", "intent", after.lower(), before, after, at,
                               "intent", detail)
                )  # fmt: skip
        for account_id, transitions in moved.items():
            changelog.append(conn, account_id, transitions, at)
        return [t.deal_id.removeprefix("intent:") for ts in moved.values() for t in ts]

    return retrying(engine, work) if rows else []


def annotate(engine: Engine, intent_id: str, at: datetime, **values: Any) -> None:
    """Set fields without a state change (a deal reference received, an acknowledgement)."""
    with _WRITE, engine.begin() as conn:
        conn.execute(
            update(trade_intents)
            .where(trade_intents.c.id == intent_id)
            .values(updated_at=at, **values)
        )


def due(
    engine: Engine, now: datetime, modes: tuple[str, ...] = ("dry_run", "live"), limit: int = 20
) -> list[Any]:
    """VALIDATED intents of `modes` whose turn has come, oldest first (the durable queue)."""
    c = trade_intents.c
    with connect(engine) as conn:
        return list(
            conn.execute(
                select(trade_intents)
                .where(c.state == "VALIDATED", c.mode.in_(modes))
                .where((c.next_attempt_at.is_(None)) | (c.next_attempt_at <= now))
                .order_by(c.received_at, c.id)
                .limit(limit)
            )
        )


def in_doubt(engine: Engine) -> list[Any]:
    """SUBMITTED and UNKNOWN intents: sent, or maybe sent, with no final answer recorded."""
    c = trade_intents.c
    with connect(engine) as conn:
        return list(
            conn.execute(
                select(trade_intents)
                .where(c.state.in_(("SUBMITTED", "UNKNOWN")))
                .order_by(c.received_at)
            )
        )


def sent_since(engine: Engine, account_id: str, since: datetime) -> int:
    """Intents of the account sent to the broker at or after `since` (orders per minute)."""
    c = trade_intents.c
    with connect(engine) as conn:
        rows = conn.execute(
            select(c.id).where(c.account_id == account_id, c.submitted_at >= since)
        ).all()
    return len(rows)


def recent_epics(engine: Engine, since: datetime) -> list[str]:
    """The markets of intents received at or after `since`: the ones a restarted service will
    most likely be asked about again."""
    c = trade_intents.c
    with connect(engine) as conn:
        rows = conn.execute(
            select(c.epic).where(c.received_at >= since, c.epic.is_not(None)).distinct()
        ).all()
    return sorted(r.epic for r in rows)


def listing(engine: Engine, state: str | None = None, limit: int = 1000) -> list[Any]:
    c = trade_intents.c
    query = select(trade_intents).order_by(c.received_at.desc(), c.id).limit(limit)
    if state is not None:
        query = query.where(c.state == state.upper())
    with connect(engine) as conn:
        return list(conn.execute(query))
