"""Alerts: each breach once, in `<export dir>/_audit/alerts.jsonl` and the `trading_alerts` table.

A breach is identified by its rule, deal (or the epic / asset class of an aggregate limit) and,
for drift, the new value: the same breach seen on the next poll is not alerted again. A breach
that cleared and came back is alerted again. Lines are appended with O_APPEND and fsynced, one
JSON object per line, so a crash leaves whole lines.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select, update

from ledger_etl.ledger.schema import trading_alerts

from .policy import Breach

ALERTS_FILE = Path("_audit") / "alerts.jsonl"


def alert_key(breach: Breach) -> str:
    parts = [breach.rule, breach.deal_id or "", breach.scope]
    if breach.rule.startswith("drift."):
        parts.append(json.dumps(breach.new, default=str))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def record_alerts(
    conn: Connection, account_id: str, breaches: list[Breach], at: datetime
) -> list[dict[str, Any]]:
    """New alerts among `breaches` (stored); breaches no longer present are resolved."""
    c = trading_alerts.c
    open_alerts = {
        row.alert_key: row
        for row in conn.execute(
            select(trading_alerts).where(c.account_id == account_id, c.resolved_at.is_(None))
        )
    }
    fresh: list[dict[str, Any]] = []
    current = set()
    for breach in breaches:
        key = alert_key(breach)
        if key in current:
            continue
        current.add(key)
        if key in open_alerts:
            conn.execute(
                update(trading_alerts)
                .where(c.account_id == account_id, c.alert_key == key)
                .values(last_at=at)
            )
            continue
        alert = {"account_id": account_id, "at": at.isoformat(), **breach.as_dict()}
        existing = conn.execute(
            select(c.alert_key).where(c.account_id == account_id, c.alert_key == key)
        ).first()
        if existing is None:
            conn.execute(
                insert(trading_alerts).values(
                    account_id=account_id,
                    alert_key=key,
                    rule=breach.rule,
                    deal_id=breach.deal_id,
                    detail=json.loads(json.dumps(alert, default=str)),
                    first_at=at,
                    last_at=at,
                    resolved_at=None,
                )
            )
        else:  # it had cleared and is back
            conn.execute(
                update(trading_alerts)
                .where(c.account_id == account_id, c.alert_key == key)
                .values(
                    last_at=at, resolved_at=None, detail=json.loads(json.dumps(alert, default=str))
                )
            )
        fresh.append(alert)
    for key in set(open_alerts) - current:
        conn.execute(
            update(trading_alerts)
            .where(c.account_id == account_id, c.alert_key == key)
            .values(resolved_at=at)
        )
    return fresh


def append_alerts(export_dir: Path, alerts: list[dict[str, Any]]) -> Path:
    path = export_dir / ALERTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if not alerts:
        return path
    data = "".join(json.dumps(a, sort_keys=True, default=str) + "\n" for a in alerts).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def read_alerts(export_dir: Path) -> list[dict[str, Any]]:
    path = export_dir / ALERTS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
