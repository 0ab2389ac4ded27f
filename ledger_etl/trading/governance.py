"""Governance on a stored snapshot: exposure, policy breaches and drift, alerts once each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from ledger_etl.ledger.schema import deal_lifecycles

from . import store
from .alerts import append_alerts, record_alerts
from .exposure import Exposure
from .policy import Breach, Policy, evaluate
from .query import exposure_at
from .snapshots import jsonable


@dataclass
class GovernanceResult:
    exposure: Exposure
    breaches: list[Breach]
    new_alerts: list[dict[str, Any]]


def first_values(conn: Any, account_id: str, deal_ids: list[str]) -> dict[str, dict[str, Any]]:
    """deal_id -> the values the deal was first seen or submitted with (its lifecycle's
    `intended`), the reference drift is measured from."""
    c = deal_lifecycles.c
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(deal_ids), 500):
        chunk = deal_ids[start : start + 500]
        rows = conn.execute(
            select(c.deal_id, c.intended).where(c.account_id == account_id, c.deal_id.in_(chunk))
        )
        out.update({r.deal_id: dict(r.intended) for r in rows if r.intended})
    return out


def govern(
    engine: Engine,
    account_id: str,
    policy: Policy,
    *,
    at: datetime | None = None,
    export_dir: Path | None = None,
    record: bool = True,
) -> GovernanceResult:
    """Evaluate `policy` on the snapshot as of `at`; with `record`, store new alerts and append
    them to `<export_dir>/_audit/alerts.jsonl`."""
    exposure = exposure_at(engine, account_id, at)
    with engine.connect() as conn:
        poll = store.poll_at(conn, account_id, at)
        rows = store.rows_as_of(conn, "position", account_id, poll.observed_at)
        deals = {
            r.deal_id: jsonable(
                {
                    k: getattr(r, k)
                    for k in (
                        "epic",
                        "level",
                        "stop_level",
                        "stop_distance",
                        "profit_level",
                        "profit_distance",
                        "guaranteed_stop",
                        "trailing_stop",
                    )
                }
            )
            for r in rows
        }
        firsts = first_values(conn, account_id, sorted(deals))
    balance = (poll.figures or {}).get("balance")
    breaches = evaluate(
        policy, exposure, deals, firsts, None if balance is None else Decimal(balance)
    )
    exposure.breaches = [b.as_dict() for b in breaches]
    fresh: list[dict[str, Any]] = []
    if record:
        with engine.begin() as conn:
            fresh = record_alerts(conn, account_id, breaches, exposure.as_of)
        if export_dir is not None:
            append_alerts(export_dir, fresh)
    return GovernanceResult(exposure, breaches, fresh)
