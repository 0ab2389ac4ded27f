"""Ledger write throughput: normalize and upsert already-fetched transaction rows.

For each backend (a temporary SQLite file, and a fresh schema on PostgreSQL that is dropped at the
end) the benchmark builds `--rows` fetched transaction rows of one account as a `HistoryResult`
(one fetch record per day window, as the fetcher returns them; building it is setup and is not
timed), then times:

1. upsert:    `ingest_history` of every row into the empty ledger (normalize, stage, merge, raw
              rows, fetch log; one database transaction), the path every sync takes;
2. re-upsert: the same rows again, a second run (every row is unchanged); row triggers count
              what it writes (only fetch-log and run records are expected);
3. baseline:  the naive way: `pandas.DataFrame.to_sql` of the same rows, then a dedup query
              (skipped with `--floor`, whose reference is the stronger one).

On SQLite the ingest defers the WAL checkpoint to the end of its run (`ledger.db`); its cost is
timed and shown apart, never inside the rates.

`--floor` adds what the database alone costs: the finished ledger and raw rows (normalized and
encoded before the clock starts) written straight into the empty tables of a fresh database, in
one transaction, with no staging and no conflict handling. No upsert can be faster than that.
Then, on each backend (targets in brackets):

    first ingest rate / floor rate         [>= 0.85]
    re-ingest rate / first ingest rate     [>= 2.0]
    rows written by the re-ingest / rows read  [<= 1 %]

`--verbose` prints the writer's per-phase timings; `--profile` adds a cProfile of the upsert.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import logging
import os
import pstats
import random
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text

from benchmarks._ledger_audit import (
    bytes_per_row,
    install_write_audit,
    locked_rows,
    written_rows,
)
from ledger_etl.capital.history import COMPLETE, FetchRecord, HistoryResult
from ledger_etl.capital.models import Transaction
from ledger_etl.capital.windows import Window
from ledger_etl.ledger import schema as s
from ledger_etl.ledger.chart import DEFAULT_TYPES, ChartOfAccounts
from ledger_etl.ledger.db import checkpoint_deferred, checkpoint_wal, make_engine, upgrade
from ledger_etl.ledger.ingest import (
    IngestSummary,
    _staged_transactions,
    finish_run,
    ingest_history,
    start_run,
)
from ledger_etl.ledger.store import LedgerWriter

FLOOR_FRACTION_TARGET = 0.85
REINGEST_SPEEDUP_TARGET = 2.0
REINGEST_WRITES_TARGET = 0.01  # of the rows read
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
ACCOUNT_ID = "BENCH0001"
START = datetime(2024, 1, 1, tzinfo=UTC)

_TYPES = sorted(DEFAULT_TYPES)
_INSTRUMENTS = (
    "EUR/USD",
    "Gold",
    "US 500",
    "Apple Inc",
    "Bitcoin/USD",
    "Germany 40",
    "Oil - Crude",
)


# -- the fetched rows (setup) ----------------------------------------------------------------------
def raw_row(rng: random.Random, index: int, at: datetime) -> dict[str, Any]:
    """One row as `GET /history/transactions` sends it (decoded with parse_float=Decimal)."""
    tx_type = "TRADE" if rng.random() < 0.6 else rng.choice(_TYPES)
    cents = rng.randrange(-500_000, 500_000)
    size = format(Decimal(cents).scaleb(-2).normalize(), "f")
    row: dict[str, Any] = {
        "date": (at + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
        "dateUtc": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
    }
    if tx_type in ("TRADE", "SWAP", "TRADE_COMMISSION"):
        row["instrumentName"] = rng.choice(_INSTRUMENTS)
    row.update(
        transactionType=tx_type,
        note=f"Trade {index} closed" if tx_type == "TRADE" else tx_type.replace("_", " ").title(),
        reference=f"1{index:014d}",
        size=size if "." in size else size + ".0",
        currency="USDd",
        status="PROCESSED",
    )
    if "instrumentName" in row:
        row["dealId"] = f"0000{index:04x}-0001-54c4-0001-{index:012x}"
    return row


def build_result(rows: int, seed: int) -> HistoryResult:
    """`rows` fetched rows over one day window per ~2,700 rows, as the fetcher hands them over."""
    rng = random.Random(seed)
    per_day = max(1, min(rows, 2_740))
    days = -(-rows // per_day)
    step_ms = 86_400_000 // per_day
    models: list[Transaction] = []
    keys: list[tuple[Any, ...]] = []
    raws: list[str] = []
    windows: list[Window] = []
    records: list[FetchRecord] = []
    index = 0
    for day in range(days):
        window = Window(START + timedelta(days=day), START + timedelta(days=day + 1))
        first = index
        for slot in range(min(per_day, rows - index)):
            at = window.start + timedelta(milliseconds=slot * step_ms + rng.randrange(step_ms))
            raw = raw_row(rng, index, at)
            models.append(Transaction.model_validate(raw))
            keys.append((raw["reference"],))
            raws.append(json.dumps(raw, separators=(",", ":")))  # the row's text in the body
            windows.append(window)
            index += 1
        kept = models[first:index]
        records.append(
            FetchRecord(
                endpoint="transactions", account_id=ACCOUNT_ID, window_start=window.start,
                window_end=window.end, params={"from": window.start.isoformat()},
                http_status=200, attempts=1, relogins=0, row_count=len(kept),
                body_sha256=None, min_ts=kept[0].date_utc if kept else None,
                max_ts=kept[-1].date_utc if kept else None, duration_s=0.1,
                ids=tuple(m.reference for m in kept), outcome=COMPLETE,
            )
        )  # fmt: skip
    return HistoryResult(
        endpoint="transactions",
        account_id=ACCOUNT_ID,
        requested=Window(START, START + timedelta(days=days)),
        records=records,
        rows=list(models),
        keys=keys,
        problems=[],
        raws=raws,
        windows=windows,
    )


# -- databases -------------------------------------------------------------------------------------
@contextmanager
def sqlite_engine() -> Iterator[Engine]:
    directory = tempfile.mkdtemp(prefix="ledger-bench-")
    engine = make_engine(f"sqlite:///{directory}/ledger.sqlite")
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def postgres_engine(url: str) -> Iterator[Engine]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


# -- the naive baseline ----------------------------------------------------------------------------
def naive_baseline(engine: Engine, result: HistoryResult) -> None:
    """`DataFrame.to_sql` of every row, then deduplicate on (account_id, reference)."""
    import pandas as pd

    account = result.account_id
    frame = pd.DataFrame(
        [
            (account, t.reference, t.date_utc, t.transaction_type, t.instrument_name,
             str(t.size), t.currency, t.status, t.deal_id, t.note)
            for t in result.rows
        ],
        columns=["account_id", "reference", "posted_at", "transaction_type", "instrument",
                 "amount", "currency", "status", "deal_id", "note"],
    )  # fmt: skip
    frame.to_sql("naive_tx", engine, if_exists="replace", index=False)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "DELETE FROM naive_tx WHERE rowid NOT IN "
                "(SELECT min(rowid) FROM naive_tx GROUP BY account_id, reference)"
            )
        else:
            conn.exec_driver_sql(
                "CREATE TABLE naive_tx_dedup AS SELECT DISTINCT ON (account_id, reference) * "
                "FROM naive_tx ORDER BY account_id, reference"
            )
            conn.exec_driver_sql("DROP TABLE naive_tx")
            conn.exec_driver_sql("ALTER TABLE naive_tx_dedup RENAME TO naive_tx")


# -- the database floor ----------------------------------------------------------------------------
def database_floor(engine: Engine, result: HistoryResult, chart: ChartOfAccounts) -> Timing:
    """Time a plain bulk write of the finished rows into empty tables (see the docstring)."""
    run_id = start_run(engine, "benchmark-floor", {"rows": len(result.rows)})
    summary = IngestSummary(result.account_id, result.endpoint)
    with engine.connect() as conn:
        writer = LedgerWriter(conn, run_id)
        staged = writer._tx_tuples(_staged_transactions(result, chart, [], summary, None))
        run_key = writer.run_key  # what the rows refer to (runs.run_key)
    entries = [(*t[:14], run_key, run_key) for t in staged]
    raws = [(t[0], t[1], t[14], t[15], t[2], t[16], t[17], run_key) for t in staged]
    del staged

    committed: list[float] = []

    def write() -> None:
        with engine.connect() as conn, checkpoint_deferred(conn):
            conn.begin()
            # The writer's own bulk insert (COPY on PostgreSQL, multi-row INSERT on SQLite):
            # the fastest plain write this code knows, so the floor is no easier to reach.
            writer = LedgerWriter(conn, run_id)
            for table, rows in ((s.ledger_entries, entries), (s.raw_transactions, raws)):
                writer._load_stage(table.name, table.c.keys(), rows)  # columns in tuple order
            began = time.perf_counter()
            conn.commit()  # the WAL checkpoint is deferred here too, like the ingest's
            committed.append(time.perf_counter() - began)

    timing = timed("floor", len(entries), write)
    print(f"             of which the commit {committed[0]:.2f} s", flush=True)
    checkpoint = checkpoint_wal(engine)
    if engine.dialect.name == "sqlite":
        print(f"  then the WAL checkpoint {checkpoint:.2f} s (not in the rate)", flush=True)
    return timing


# -- measuring -------------------------------------------------------------------------------------
@dataclass
class Timing:
    label: str
    rows: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def timed(label: str, rows: int, action: Callable[[], Any], profile: bool = False) -> Timing:
    gc.collect()
    profiler = cProfile.Profile() if profile else None
    began = time.perf_counter()
    if profiler is not None:
        profiler.runcall(action)
    else:
        action()
    timing = Timing(label, rows, time.perf_counter() - began)
    print(
        f"  {label:<10} {timing.seconds:8.2f} s  {timing.rate:>12,.0f} rows/s  "
        f"(peak RSS {peak_rss_mb():,.0f} MiB)",
        flush=True,
    )
    if profiler is not None:
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)
    return timing


def ingest(engine: Engine, result: HistoryResult, chart: ChartOfAccounts) -> Callable[[], Any]:
    """One run storing the rows; the run's closing WAL checkpoint is kept out of the clock."""

    def run() -> IngestSummary:
        run_id = start_run(engine, "benchmark", {"rows": len(result.rows)})
        summary = ingest_history(engine, run_id, result, chart)
        run.summary = summary  # type: ignore[attr-defined]
        run.run_id = run_id  # type: ignore[attr-defined]
        return summary

    return run


def close_run(engine: Engine, run: Callable[[], Any]) -> float:
    """Finish the run (untimed by `timed`); returns its WAL checkpoint's seconds."""
    summary = run.summary  # type: ignore[attr-defined]
    return finish_run(engine, run.run_id, "succeeded", summary.as_dict())  # type: ignore[attr-defined]


@dataclass
class BackendReport:
    name: str
    upsert: Timing
    reupsert: Timing
    written: dict[str, int]
    locked: int
    ok: bool


def bench_backend(
    name: str, engine: Engine, result: HistoryResult, profile: bool, baseline: bool
) -> BackendReport:
    rows = len(result.rows)
    chart = ChartOfAccounts()
    print(f"--- {name}: {rows:,} rows, one account ---", flush=True)
    first = ingest(engine, result, chart)
    upsert = timed("upsert", rows, first, profile)
    checkpoint = close_run(engine, first)
    if engine.dialect.name == "sqlite":
        print(f"  then the WAL checkpoint at the run's end {checkpoint:.2f} s (not in the rate)")
    summary = first.summary  # type: ignore[attr-defined]
    ok = summary.inserted == rows and summary.changed == 0
    sizes = bytes_per_row(engine, ("ledger_entries", "raw_transactions"))
    print("  stored                 " + ", ".join(f"{t} {b:,.0f} B/row" for t, b in sizes.items()))
    install_write_audit(engine)
    again = ingest(engine, result, chart)
    reupsert = timed("re-upsert", rows, again)
    checkpoint = close_run(engine, again)
    written = written_rows(engine)
    locked = locked_rows(engine)
    if engine.dialect.name == "sqlite":
        print(f"  then the WAL checkpoint at the run's end {checkpoint:.2f} s (not in the rate)")
    summary = again.summary  # type: ignore[attr-defined]
    ok = ok and summary.unchanged == rows and summary.inserted == summary.changed == 0
    lines = []
    if baseline:
        naive = timed("baseline", rows, lambda: naive_baseline(engine, result))
        lines += [
            f"  upsert / baseline      {upsert.rate / naive.rate:6.2f}x",
            f"  re-upsert / baseline   {reupsert.rate / naive.rate:6.2f}x",
        ]
    lines += [
        f"  peak RSS               {peak_rss_mb():,.0f} MiB",
        f"  counts                 {'as expected' if ok else 'UNEXPECTED: ' + repr(summary)}",
    ]
    print("\n".join(lines), flush=True)
    return BackendReport(name, upsert, reupsert, written, locked, ok)


def verdict(report: BackendReport, floor: Timing | None) -> list[str]:
    """The targets of the write path, measured in this run."""
    rows = report.upsert.rows
    speedup = report.reupsert.rate / report.upsert.rate
    total = sum(report.written.values())
    by_table = ", ".join(f"{t} {n:,}" for t, n in sorted(report.written.items())) or "none"

    def met(ok: bool) -> str:
        return "met" if ok else "NOT MET"

    lines = [f"--- {report.name}: targets ---"]
    if floor is not None:
        fraction = report.upsert.rate / floor.rate
        lines.append(
            f"  first ingest / floor         {fraction:6.2f}   "
            f"[>= {FLOOR_FRACTION_TARGET}] {met(fraction >= FLOOR_FRACTION_TARGET)}"
        )
    lines += [
        f"  re-ingest / first ingest     {speedup:6.2f}x  "
        f"[>= {REINGEST_SPEEDUP_TARGET}] {met(speedup >= REINGEST_SPEEDUP_TARGET)}",
        f"  rows written by re-ingest    {total:,} of {rows:,} read ({total / rows:.3%}; "
        f"{by_table}; rows locked {report.locked:,})   [<= {REINGEST_WRITES_TARGET:.0%}] "
        f"{met(total + report.locked <= REINGEST_WRITES_TARGET * rows)}",
    ]
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks ledger",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows (default 1,000,000)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("LEDGER_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL,
        help="PostgreSQL to use (a fresh schema is created and dropped); "
        "default $LEDGER_TEST_POSTGRES_URL or " + DEFAULT_POSTGRES_URL,
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--verbose", action="store_true", help="per-phase timings of the writer")
    parser.add_argument("--profile", action="store_true", help="cProfile the first upsert")
    parser.add_argument(
        "--floor", action="store_true", help="also time a plain bulk write of the finished rows"
    )
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.verbose:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("    %(message)s"))
        for name in ("ledger_etl.ledger.store", "ledger_etl.ledger.ingest"):
            logger = logging.getLogger(name)
            logger.setLevel(logging.DEBUG)
            logger.addHandler(handler)
    began = time.perf_counter()
    result = build_result(args.rows, args.seed)
    print(
        f"setup: {args.rows:,} fetched rows in {time.perf_counter() - began:.1f} s "
        f"(peak RSS {peak_rss_mb():,.0f} MiB)",
        flush=True,
    )
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    ok = True
    verdicts: list[str] = []
    for backend in backends:
        name = "SQLite" if backend == "sqlite" else "PostgreSQL"

        def fresh(backend: str = backend) -> Any:
            return sqlite_engine() if backend == "sqlite" else postgres_engine(args.postgres_url)

        floor = None
        if args.floor:
            print(f"--- {name}: the floor, {args.rows:,} rows ---", flush=True)
            with fresh() as engine:
                floor = database_floor(engine, result, ChartOfAccounts())
        with fresh() as engine:
            report = bench_backend(name, engine, result, args.profile, baseline=not args.floor)
        ok = ok and report.ok
        verdicts += verdict(report, floor)
    print("\n".join(verdicts), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
