"""Client sentiment as a time series per market: one row per (market, observed instant).

An observation is stamped with the server's clock at the poll (see `capital.sentiment`), so the
series grows when time moves on, never because a poll was repeated: the same instant observed
again with the same figures writes nothing, and with other figures replaces them and counts a
revision (the broker revised its answer; the earlier figures stay in the poll's raw record of
the revision count only). Every poll is recorded in `sentiment_polls`, unknown markets and
unusable rows included: the coverage of the series, and nothing lost without a trace.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Engine, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ledger_etl.capital.client import CapitalClient
from ledger_etl.capital.models import dump_row
from ledger_etl.capital.sentiment import ClientSentiment, SentimentPoll, fetch_client_sentiment
from ledger_etl.ledger import schema as s
from ledger_etl.ledger.db import upgrade
from ledger_etl.ledger.ingest import finish_run, start_run
from ledger_etl.market.locks import serialize_writers

RUN_KIND = "sentiment"


@dataclass(frozen=True)
class SentimentWrite:
    inserted: int = 0
    revised: int = 0
    unchanged: int = 0


@dataclass(frozen=True)
class SentimentReport:
    run_id: str
    observed_at: datetime
    asked: int
    write: SentimentWrite
    unknown: list[str] = field(default_factory=list)
    problems: int = 0

    @property
    def ok(self) -> bool:
        return not self.unknown and not self.problems


@dataclass(frozen=True)
class SentimentPoint:
    epic: str
    observed_at: datetime
    long_pct: Decimal
    short_pct: Decimal
    flags: str
    revision: int


def _flags(item: ClientSentiment) -> str:
    return "" if item.sums_to_hundred else "not_hundred"


def record_sentiment(engine: Engine, poll: SentimentPoll, run_id: str) -> SentimentWrite:
    """Write the poll's observations and its poll record in one transaction (retried once if a
    concurrent poll of the same instant inserted first)."""
    for attempt in (1, 2):
        try:
            return _record(engine, poll, run_id)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _record(engine: Engine, poll: SentimentPoll, run_id: str) -> SentimentWrite:
    table, now = s.sentiment_observations, datetime.now(UTC)
    epics = [item.market_id for item in poll.sentiments]
    inserted = revised = unchanged = 0
    with engine.begin() as conn:
        serialize_writers(conn, "sentiment")
        stored = {
            row.epic: row
            for row in conn.execute(
                select(table.c.epic, table.c.long_pct, table.c.short_pct, table.c.revision).where(
                    and_(table.c.observed_at == poll.observed_at, table.c.epic.in_(epics))
                )
            )
        } if epics else {}  # fmt: skip
        fresh: list[dict[str, object]] = []
        for item in poll.sentiments:
            values = {
                "long_pct": item.long_position_percentage,
                "short_pct": item.short_position_percentage,
                "flags": _flags(item),
                "raw": dump_row(item.model_dump(by_alias=True, mode="json")),
            }
            old = stored.get(item.market_id)
            if old is None:
                fresh.append({
                    "epic": item.market_id, "observed_at": poll.observed_at, "revision": 1,
                    "run_id": run_id, "recorded_at": now, **values,
                })  # fmt: skip
            elif (old.long_pct, old.short_pct) == (values["long_pct"], values["short_pct"]):
                unchanged += 1
            else:
                key = and_(table.c.epic == item.market_id, table.c.observed_at == poll.observed_at)
                conn.execute(update(table).where(key).values(
                    revision=old.revision + 1, run_id=run_id, recorded_at=now, **values
                ))  # fmt: skip
                revised += 1
        if fresh:
            conn.execute(insert(table), fresh)  # one executemany for the whole poll
        inserted = len(fresh)
        conn.execute(insert(s.sentiment_polls).values(
            observed_at=poll.observed_at, run_id=run_id,
            asked=len(poll.sentiments) + len(poll.unknown) + len(poll.problems),
            observed=len(poll.sentiments), new_rows=inserted, unknown=list(poll.unknown),
            problems=[{"row": json.loads(dump_row(p.row)), "reason": p.reason}
                      for p in poll.problems],
            recorded_at=now,
        ))  # fmt: skip
    return SentimentWrite(inserted, revised, unchanged)


def poll_sentiment(client: CapitalClient, engine: Engine, epics: Sequence[str]) -> SentimentReport:
    """One scheduled poll: fetch the epics' sentiment, store it, record the run."""
    upgrade(engine)
    run_id = start_run(engine, RUN_KIND, {"epics": list(epics)})
    try:
        poll = fetch_client_sentiment(client, epics)
        write = record_sentiment(engine, poll, run_id)
    except Exception as error:
        finish_run(engine, run_id, "failed", {"error": str(error)[:500]})
        raise
    report = SentimentReport(
        run_id, poll.observed_at, len(epics), write, list(poll.unknown), len(poll.problems)
    )
    finish_run(engine, run_id, "succeeded", {
        "observed_at": poll.observed_at.isoformat(), "inserted": write.inserted,
        "revised": write.revised, "unchanged": write.unchanged, "unknown": poll.unknown,
        "problems": len(poll.problems),
    })  # fmt: skip
    return report


def sentiment_series(
    engine: Engine,
    epics: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[SentimentPoint]:
    """Stored observations in [start, end), by market then time."""
    table = s.sentiment_observations
    query = select(table).order_by(table.c.epic, table.c.observed_at)
    if epics:
        query = query.where(table.c.epic.in_(list(epics)))
    if start is not None:
        query = query.where(table.c.observed_at >= start)
    if end is not None:
        query = query.where(table.c.observed_at < end)
    with engine.connect() as conn:
        return [
            SentimentPoint(r.epic, r.observed_at, r.long_pct, r.short_pct, r.flags, r.revision)
            for r in conn.execute(query)
        ]


def latest_sentiment(engine: Engine, epics: Sequence[str] | None = None) -> list[SentimentPoint]:
    """The last observation of each market (of `epics`, or of every market observed)."""
    table = s.sentiment_observations
    last = select(table.c.epic, func.max(table.c.observed_at).label("at")).group_by(table.c.epic)
    if epics:
        last = last.where(table.c.epic.in_(list(epics)))
    newest = last.subquery("newest")
    query = (
        select(table)
        .join(newest, and_(newest.c.epic == table.c.epic, newest.c.at == table.c.observed_at))
        .order_by(table.c.epic)
    )
    with engine.connect() as conn:
        return [
            SentimentPoint(r.epic, r.observed_at, r.long_pct, r.short_pct, r.flags, r.revision)
            for r in conn.execute(query)
        ]


@dataclass(frozen=True)
class PollRecord:
    observed_at: datetime
    run_id: str
    asked: int
    observed: int
    new_rows: int
    unknown: list[str]


def sentiment_polls_since(
    engine: Engine, since: datetime | None, limit: int | None = None
) -> list[PollRecord]:
    """Recorded polls at or after `since` (all when None), newest first."""
    upgrade(engine)
    p = s.sentiment_polls
    query = select(p).order_by(p.c.observed_at.desc(), p.c.id.desc())
    if since is not None:
        query = query.where(p.c.observed_at >= since)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [
            PollRecord(r.observed_at, r.run_id, r.asked, r.observed, r.new_rows, list(r.unknown))
            for r in conn.execute(query)
        ]
