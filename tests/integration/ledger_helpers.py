"""Helpers for ledger tests: sync against a simulator, read ground truth, read the ledger."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import httpx
from sqlalchemy import Engine, select

from ledger_etl.capital.client import CapitalClient
from ledger_etl.ledger import schema as s
from ledger_etl.simulator import SimulatorServer
from ledger_etl.sync import SyncReport, sync_range
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD


def client_for(server: SimulatorServer, **kwargs: object) -> CapitalClient:
    options: dict[str, object] = {"rate_limit": 500.0, "backoff_base": 0.01, "backoff_cap": 0.05}
    options.update(kwargs)
    return CapitalClient(server.url, API_KEY, IDENTIFIER, PASSWORD, **options)  # type: ignore[arg-type]


def sync(
    server: SimulatorServer,
    engine: Engine,
    start: datetime,
    end: datetime,
    accounts: Sequence[str] | None = None,
    **kwargs: object,
) -> SyncReport:
    with client_for(server) as client:
        return sync_range(client, engine, start, end, accounts, **kwargs)  # type: ignore[arg-type]


def account_ids(server: SimulatorServer) -> list[str]:
    return [a["accountId"] for a in httpx.get(server.url + "/_sim/accounts").json()["accounts"]]


def truth(
    server: SimulatorServer, kind: str, account: str, start: datetime, end: datetime
) -> list[dict]:
    response = httpx.get(
        f"{server.url}/_sim/truth/{kind}",
        timeout=120,
        params={"account": account, "from": start.isoformat(), "to": end.isoformat()},
    )
    response.raise_for_status()
    return response.json()["transactions" if kind == "transactions" else "activities"]


def truth_amounts(
    server: SimulatorServer, account: str, start: datetime, end: datetime
) -> dict[str, Decimal]:
    return {
        r["reference"]: Decimal(r["size"])
        for r in truth(server, "transactions", account, start, end)
    }


def ledger_amounts(
    engine: Engine, account: str, start: datetime | None = None, end: datetime | None = None
) -> dict[str, Decimal]:
    """Stored amounts by reference, optionally only for `start <= posted_at < end`.

    A sync of [start, end) may also store rows stamped exactly at `end` (a boundary row is kept by
    the window that returned it, whatever the API's inclusivity); they belong to the next range.
    """
    e = s.ledger_entries
    query = select(e.c.reference, e.c.amount).where(e.c.account_id == account)
    if start is not None:
        query = query.where(e.c.posted_at >= start)
    if end is not None:
        query = query.where(e.c.posted_at < end)
    with engine.connect() as conn:
        return {r.reference: r.amount for r in conn.execute(query)}


def count(engine: Engine, table: s.Table) -> int:
    from sqlalchemy import func

    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
