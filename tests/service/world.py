"""A small world for the read service: published statements and ledger entries on disk and in
a real database, built by the package's own publisher and schema (no fakes)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, insert

from ledger_etl.ledger import schema as s
from ledger_etl.ledger.db import upgrade
from ledger_etl.statements.build import build_statement
from ledger_etl.statements.export import publish_built
from ledger_etl.statements.model import Gap, ObservationWindow
from ledger_etl.statements.paths import parse_month
from tests.unit.test_statements_build import entry, inputs

D = Decimal
FIRST = "ACC-1"
SECOND = "ACC-2"
THIRD = "ACC-3"  # no user below may read it
JULY = parse_month("2025-07")
FORMULA_NOTE = '=HYPERLINK("http://x.invalid","click")'


@dataclass(frozen=True)
class World:
    engine: Engine
    export_root: Path


def publish_statements(root: Path) -> None:
    """ACC-1 June in two versions (the second adds an entry, and has every format), ACC-1 July
    PROVISIONAL (a gap), ACC-2 and ACC-3 June."""
    base = inputs()  # reconciles with the broker's balance: FINAL
    light = ("json", "csv")  # every format only where a download of each is tested
    publish_built(build_statement(base), root, run_id="r1", formats=light)
    late = (*base.entries, entry("z9", 25, "3.00"))
    changed = replace(
        base,
        entries=late,
        balance_at_end=base.balance_at_end + D("3.00"),
        observation_window=ObservationWindow(D("53.00")),
    )
    publish_built(build_statement(changed), root, run_id="r2")
    gap = Gap("transactions", JULY.start + timedelta(days=3), JULY.start + timedelta(days=4))
    july = replace(
        base,
        period=JULY,
        entries=(),
        gaps=(gap,),
        observation=None,
        observation_window=None,
        balance_before=changed.balance_at_end,
        balance_before_previous=base.balance_before,
        previous_movement=changed.balance_at_end - base.balance_before,
        balance_at_end=changed.balance_at_end,
    )
    publish_built(build_statement(july), root, run_id="r3", formats=light)
    for other in (SECOND, THIRD):
        publish_built(build_statement(replace(base, account_id=other)), root, "r4", formats=light)


def ledger_rows(account: str, count: int, start: datetime) -> list[dict]:
    kinds = ("TRADE", "SWAP", "DEPOSIT", "TRADE_COMMISSION")
    rows = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        rows.append(
            {
                "account_id": account,
                "reference": f"{account}-{i:07d}",
                "posted_at": start + timedelta(minutes=37 * i),
                "transaction_type": kind,
                "instrument": "EURUSD" if kind != "DEPOSIT" else None,
                "amount": D("-12.34567891") if i == 5 else D(f"{(i % 17) - 8}.{i % 100:02d}"),
                "currency": "USD",
                "currency_raw": "USD",
                "status": "PROCESSED",
                "deal_id": None,
                "note": FORMULA_NOTE if i == 3 else None,
                "ledger_account": "4000",
                "flags": "",
                "row_sha256": f"{i:064x}",
                "first_run_key": 1,
                "last_run_key": 1,
            }
        )
    return rows


def fill_ledger(engine: Engine, per_account: int = 60) -> None:
    upgrade(engine)
    start = datetime(2025, 6, 1, tzinfo=UTC)
    with engine.begin() as conn:
        for account in (FIRST, SECOND, THIRD):
            conn.execute(insert(s.ledger_entries), ledger_rows(account, per_account, start))


def make_world(engine: Engine, root: Path) -> World:
    publish_statements(root)
    fill_ledger(engine)
    return World(engine, root)
