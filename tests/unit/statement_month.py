"""A realistic month built by hand (no database): the demo's October volume, about 200 entries
of the usual types, a window fetch per endpoint and day, and a broker balance that reconciles.

Shared by the XLSX print-layout and the PDF tests, and by the page-count figure in the README.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ledger_etl.ledger.chart import DEFAULT_ACCOUNTS, DEFAULT_TYPES
from ledger_etl.statements.build import build_statement
from ledger_etl.statements.model import (
    BalanceObservation,
    FetchRecord,
    LedgerEntry,
    ObservationWindow,
    Statement,
    StatementInputs,
)
from ledger_etl.statements.paths import parse_month

D = Decimal
OCTOBER = parse_month("2025-10")
OPENING = D("25000.00")
INSTRUMENTS = ("EURUSD", "GBPUSD", "US100", "GOLD", "OIL_CRUDE", "BTCUSD", "AAPL")
# (type, amount pattern): trades dominate, each with its commission; swaps nightly.
CYCLE = (
    ("TRADE", ("125.40", "-87.15", "312.00", "-45.90", "18.75", "-230.10")),
    ("TRADE_COMMISSION", ("-1.25", "-0.87", "-3.12")),
    ("SWAP", ("-2.31", "-0.48", "1.05")),
    ("TRADE", ("64.20", "-12.85", "-150.00", "9.99")),
    ("FX_COMMISSION", ("-0.35", "-0.12")),
)


def october_entries(count: int = 200, note: str | None = None) -> tuple[LedgerEntry, ...]:
    """`count` entries spread over the month, a deposit first and a withdrawal late on."""
    out = []
    step = (OCTOBER.end - OCTOBER.start) / (count + 1)
    for i in range(count):
        if i == 0:
            kind, amount = "DEPOSIT", "5000.00"
        elif i == count - 5:
            kind, amount = "WITHDRAWAL", "-1500.00"
        else:
            kind, amounts = CYCLE[i % len(CYCLE)]
            amount = amounts[(i // len(CYCLE)) % len(amounts)]
        at = OCTOBER.start + step * (i + 1)
        out.append(
            LedgerEntry(
                reference=f"OCT{i:05d}",
                posted_at=at.replace(microsecond=0),
                transaction_type=kind,
                instrument=None if kind in ("DEPOSIT", "WITHDRAWAL") else INSTRUMENTS[i % 7],
                amount=D(amount),
                currency="USD",
                status="PROCESSED",
                deal_id=f"0000{i:04d}-55aa-4b6c-8d7e-{i:012d}" if kind == "TRADE" else None,
                note=note if i == 3 else None,
                ledger_account=DEFAULT_TYPES[kind],
                flags="",
                row_sha256=f"{i:064x}",
                last_run_id="run-2025-11-01",
            )
        )
    return tuple(out)


def fetches() -> tuple[FetchRecord, ...]:
    out = []
    for endpoint in ("transactions", "activity"):
        day = OCTOBER.start
        while day < OCTOBER.end:
            out.append(
                FetchRecord(endpoint, day, day + timedelta(days=1), '{"from":"x"}', 200, 1, 7,
                            "ab" * 32, (), datetime(2025, 11, 1, 3, tzinfo=UTC), "run-1")
            )  # fmt: skip
            day += timedelta(days=1)
    return tuple(out)


def october_statement(
    count: int = 200, note: str | None = None, account_name: str | None = "Main USD account"
) -> Statement:
    """A FINAL October: it reconciles with the broker's balance seen on 2 November."""
    entries = october_entries(count, note)
    closing = OPENING + sum((e.amount for e in entries), D(0))
    inputs = StatementInputs(
        account_id="ACC-OCT",
        account_name=account_name,
        currency="USD",
        period=OCTOBER,
        balance_before=OPENING,
        balance_before_previous=D("24000.00"),
        previous_movement=D("1000.00"),
        balance_at_end=closing,
        entries=entries,
        activities=(),
        fetches=fetches(),
        gaps=(),
        observation=BalanceObservation(
            datetime(2025, 11, 2, 9, 30, tzinfo=UTC), closing + D("12.50"), "USD", "run-1"
        ),
        observation_window=ObservationWindow(D("12.50")),
        ledger_account_names=dict(DEFAULT_ACCOUNTS),
    )
    return build_statement(inputs)


def with_closing(statement: Statement, closing: Decimal) -> Statement:
    """The same statement stating another closing balance (what a forger would print)."""
    return replace(statement, closing_balance=closing, movement=closing - statement.opening_balance)
