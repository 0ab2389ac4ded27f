"""The append-only change log: every lifecycle transition, chained by hashes per account.

`entry_hash = sha256(prev_hash + canonical JSON of the entry)`; the first entry of an account
chains to 64 zeros. Editing an entry breaks its hash; removing or reordering entries breaks the
chain (`prev_hash` and the contiguous `seq`); removing the newest entries is caught by the head
(seq and hash) that every poll records beside its figures.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from ledger_etl.ledger.schema import trading_changelog, trading_polls

from .lifecycle import Transition

GENESIS = "0" * 64


def entry_hash(prev_hash: str, entry: dict[str, Any]) -> str:
    fields = {
        k: entry[k]
        for k in (
            "account_id",
            "seq",
            "deal_id",
            "kind",
            "event",
            "from_state",
            "to_state",
            "source",
            "detail",
            "flag",
        )
    }
    fields["occurred_at"] = _iso(entry["occurred_at"])
    fields["recorded_at"] = _iso(entry["recorded_at"])
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + text).encode()).hexdigest()


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="microseconds")


def head(conn: Connection, account_id: str) -> tuple[int, str]:
    c = trading_changelog.c
    row = conn.execute(
        select(c.seq, c.entry_hash)
        .where(c.account_id == account_id)
        .order_by(c.seq.desc())
        .limit(1)
    ).first()
    return (row.seq, row.entry_hash) if row else (0, GENESIS)


def append(
    conn: Connection, account_id: str, transitions: list[Transition], recorded_at: datetime
) -> int:
    """Append transitions after the account's head; a concurrent writer fails on the key."""
    if not transitions:
        return 0
    seq, prev = head(conn, account_id)
    rows = []
    for t in transitions:
        seq += 1
        entry = {
            "account_id": account_id,
            "seq": seq,
            "deal_id": t.deal_id,
            "kind": t.kind,
            "event": t.event,
            "from_state": t.from_state,
            "to_state": t.to_state,
            "occurred_at": t.occurred_at,
            "recorded_at": recorded_at,
            "source": t.source,
            "detail": json.loads(json.dumps(t.detail, default=str)),
            "flag": t.flag,
        }
        entry["prev_hash"] = prev
        entry["entry_hash"] = prev = entry_hash(prev, entry)
        rows.append(entry)
    conn.execute(insert(trading_changelog), rows)
    return len(rows)


@dataclass(frozen=True)
class ChainProblem:
    account_id: str
    seq: int
    reason: str


def verify(conn: Connection, account_id: str | None = None) -> tuple[int, list[ChainProblem]]:
    """(entries checked, problems) over one account's chain or all of them."""
    c = trading_changelog.c
    query = select(trading_changelog).order_by(c.account_id, c.seq)
    if account_id is not None:
        query = query.where(c.account_id == account_id)
    problems: list[ChainProblem] = []
    checked = 0
    last: dict[str, tuple[int, str]] = {}
    for row in conn.execute(query):
        entry = row._asdict()
        expected_seq, prev = last.get(row.account_id, (0, GENESIS))
        if row.seq != expected_seq + 1:
            problems.append(
                ChainProblem(
                    row.account_id, row.seq, f"entry {expected_seq + 1} is missing or out of order"
                )
            )
        if row.prev_hash != prev:
            problems.append(
                ChainProblem(
                    row.account_id, row.seq, "prev_hash does not match the entry before it"
                )
            )
        if entry_hash(row.prev_hash, entry) != row.entry_hash:
            problems.append(
                ChainProblem(
                    row.account_id, row.seq, "entry was edited: its hash does not match its content"
                )
            )
        last[row.account_id] = (row.seq, row.entry_hash)
        checked += 1
    problems += _check_heads(conn, account_id, last)
    return checked, problems


def _check_heads(
    conn: Connection, account_id: str | None, last: dict[str, tuple[int, str]]
) -> list[ChainProblem]:
    """The newest head each account's polls recorded must still be in the chain."""
    p = trading_polls.c
    query = select(p.account_id, p.figures).order_by(
        p.account_id, p.observed_at.desc(), p.id.desc()
    )
    if account_id is not None:
        query = query.where(p.account_id == account_id)
    problems = []
    done: set[str] = set()
    for row in conn.execute(query):
        recorded = (row.figures or {}).get("changelog_head")
        if row.account_id in done or not recorded:
            continue
        done.add(row.account_id)
        seq, digest = int(recorded["seq"]), recorded["hash"]
        have_seq, _ = last.get(row.account_id, (0, GENESIS))
        if have_seq < seq:
            problems.append(
                ChainProblem(
                    row.account_id, seq, f"entries after {have_seq} were removed (head was {seq})"
                )
            )
        elif seq and not _hash_at(conn, row.account_id, seq, digest):
            problems.append(ChainProblem(row.account_id, seq, "recorded head hash differs"))
    return problems


def _hash_at(conn: Connection, account_id: str, seq: int, digest: str) -> bool:
    c = trading_changelog.c
    found = conn.execute(
        select(c.entry_hash).where(c.account_id == account_id, c.seq == seq)
    ).scalar_one_or_none()
    return found == digest


def entries_for(conn: Connection, account_id: str, deal_ids: list[str]) -> list[Any]:
    c = trading_changelog.c
    return list(
        conn.execute(
            select(trading_changelog)
            .where(c.account_id == account_id, c.deal_id.in_(deal_ids))
            .order_by(c.seq)
        )
    )
