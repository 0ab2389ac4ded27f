"""Statement writers on a large month, beside a naive pandas baseline.

Builds a month of `--entries` generated ledger entries directly (no database), then times the
CSV, JSON, Parquet and XLSX writers and reports the process's peak RSS. The baseline is
`pandas.DataFrame.to_csv` / `to_excel` on the same rows, run afterwards in the same process
(its peak is reported separately, so it does not hide the writers' own).

    python -m benchmarks statements                       # 100,000 entries
    python -m benchmarks statements --entries 1000000 --no-baseline

Targets (2 cores): CSV + JSON + Parquet <= 3 s and XLSX <= 15 s for 100,000 entries; a
1,000,000-entry month under 1.5 GB RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from ledger_etl.ledger.chart import DEFAULT_ACCOUNTS, DEFAULT_TYPES
from ledger_etl.statements.build import build_statement
from ledger_etl.statements.document import statement_content_hash
from ledger_etl.statements.model import (
    BalanceObservation,
    LedgerEntry,
    ObservationWindow,
    Period,
    StatementInputs,
)
from ledger_etl.statements.paths import atomic_write
from ledger_etl.statements.writers_csv import write_csv
from ledger_etl.statements.writers_json import write_json
from ledger_etl.statements.writers_parquet import write_parquet
from ledger_etl.statements.writers_xlsx import write_xlsx

TYPES = ("TRADE", "SWAP", "TRADE_COMMISSION", "DEPOSIT", "WITHDRAWAL", "REBATE")
INSTRUMENTS = ("EURUSD", "US500", "OIL_CRUDE", "BTCUSD", None)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def generate(count: int) -> StatementInputs:
    start = datetime(2025, 6, 1, tzinfo=UTC)
    end = datetime(2025, 7, 1, tzinfo=UTC)
    step = (end - start) / max(count, 1)
    run_id = "20250701T000000Z-benchmark000"
    sha = "0" * 64
    entries = []
    for i in range(count):
        kind = TYPES[i % len(TYPES)]
        cents = (i * 7919) % 200_000 - 100_000
        entries.append(
            LedgerEntry(
                reference=f"{300000000000000 + i}",
                posted_at=start + step * i,
                transaction_type=kind,
                instrument=INSTRUMENTS[i % len(INSTRUMENTS)],
                amount=Decimal(cents).scaleb(-2),
                currency="USD",
                status="PROCESSED",
                deal_id=f"00fb1ba3-24f8-54c4-0000-{i:012d}" if kind == "TRADE" else None,
                note="Trade closed" if kind == "TRADE" else "=1+2" if i % 997 == 0 else "Fee",
                ledger_account=DEFAULT_TYPES[kind],
                flags="",
                row_sha256=sha,
                last_run_id=run_id,
            )
        )
    movement = sum((e.amount for e in entries), Decimal(0))
    opening = Decimal("100000")
    return StatementInputs(
        account_id="BENCH",
        account_name="benchmark",
        currency="USD",
        period=Period("2025-06", start, end, datetime(2025, 5, 1, tzinfo=UTC)),
        balance_before=opening,
        balance_before_previous=opening,
        previous_movement=Decimal(0),
        balance_at_end=opening + movement,
        entries=tuple(entries),
        activities=(),
        fetches=(),
        gaps=(),
        observation=BalanceObservation(end + timedelta(days=1), opening + movement, "USD", None),
        observation_window=ObservationWindow(Decimal(0)),
        ledger_account_names=dict(DEFAULT_ACCOUNTS),
    )


def timed(label: str, func, results: dict[str, float]):  # type: ignore[no-untyped-def]
    began = time.perf_counter()
    value = func()
    results[label] = time.perf_counter() - began
    size = ""
    if isinstance(value, Path):
        size = f"  ({value.stat().st_size / 1e6:.1f} MB)"
    print(f"  {label:<28} {results[label]:8.2f} s{size}   peak RSS {peak_rss_mb():7.0f} MB")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.statements", description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--no-baseline", action="store_true", help="skip the pandas baseline")
    parser.add_argument("--no-xlsx", action="store_true", help="skip the XLSX writer")
    args = parser.parse_args(argv)
    results: dict[str, float] = {}
    print(f"statement writers: {args.entries:,} entries, {os.cpu_count()} CPUs")
    print(f"  start                                           peak RSS {peak_rss_mb():7.0f} MB")
    inputs = timed("generate inputs", lambda: generate(args.entries), results)
    statement = timed("build statement", lambda: build_statement(inputs), results)
    timed("content hash", lambda: statement_content_hash(statement), results)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)

        def write(name, writer):  # type: ignore[no-untyped-def]
            path = out / name
            atomic_write(path, lambda handle: writer(statement, handle))
            return path

        timed("csv", lambda: write("statement.csv", write_csv), results)
        timed("json", lambda: write("statement.json", write_json), results)
        timed("parquet", lambda: write("statement.parquet", write_parquet), results)
        if not args.no_xlsx:
            timed("xlsx", lambda: write("statement.xlsx", write_xlsx), results)
        writers_peak = peak_rss_mb()
        fast = results["csv"] + results["json"] + results["parquet"]
        print(f"  csv + json + parquet         {fast:8.2f} s   (target <= 3 s at 100k)")
        if "xlsx" in results:
            xlsx = results["xlsx"]
            print(f"  xlsx                         {xlsx:8.2f} s   (target <= 15 s at 100k)")
        print(f"  peak RSS through the writers {writers_peak:8.0f} MB (target < 1536 MB at 1M)")
        if not args.no_baseline:
            _baseline(statement, out, results)
    return 0


def _baseline(statement, out: Path, results: dict[str, float]) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    print("  naive baseline (pandas, same rows):")
    frame = timed(
        "baseline: DataFrame",
        lambda: pd.DataFrame(
            {
                "posted_at": [ln.entry.posted_at.replace(tzinfo=None) for ln in statement.lines],
                "reference": [ln.entry.reference for ln in statement.lines],
                "type": [ln.entry.transaction_type for ln in statement.lines],
                "instrument": [ln.entry.instrument for ln in statement.lines],
                "amount": [ln.entry.amount for ln in statement.lines],
                "currency": [ln.entry.currency for ln in statement.lines],
                "status": [ln.entry.status for ln in statement.lines],
                "running_balance": [ln.running_balance for ln in statement.lines],
                "ledger_account": [ln.entry.ledger_account for ln in statement.lines],
                "deal_id": [ln.entry.deal_id for ln in statement.lines],
                "note": [ln.entry.note for ln in statement.lines],
            }
        ),
        results,
    )

    def to_csv() -> Path:
        frame.to_csv(out / "baseline.csv", index=False)
        return out / "baseline.csv"

    def to_excel() -> Path:
        frame.to_excel(out / "baseline.xlsx", index=False, engine="openpyxl")
        return out / "baseline.xlsx"

    timed("baseline: to_csv", to_csv, results)
    if len(statement.lines) < 1_048_576:
        timed("baseline: to_excel", to_excel, results)


if __name__ == "__main__":
    sys.exit(main())
