"""`statement.parquet`: the entries with decimal128(38, 8) amounts and timestamp[us, UTC].

Written in record batches so a large month never sits in memory twice; the statement header
(balances, status, version) is kept in the file's key-value metadata.
"""

from __future__ import annotations

import json
from decimal import Decimal, localcontext
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ledger_etl.statements.document import header
from ledger_etl.statements.model import Statement

MONEY = pa.decimal128(38, 8)
INSTANT = pa.timestamp("us", tz="UTC")
PARQUET_SCHEMA = pa.schema(
    [
        ("posted_at", INSTANT),
        ("reference", pa.string()),
        ("type", pa.string()),
        ("instrument", pa.string()),
        ("amount", MONEY),
        ("currency", pa.string()),
        ("status", pa.string()),
        ("running_balance", MONEY),
        ("ledger_account", pa.string()),
        ("ledger_account_name", pa.string()),
        ("deal_id", pa.string()),
        ("note", pa.string()),
        ("flags", pa.string()),
    ]
)
METADATA_KEY = b"ledger_etl.statement"
HEADER_KEYS = (
    "schema_version",
    "account_id",
    "currency",
    "period_start",
    "period_end",
    "status",
    "opening_balance",
    "closing_balance",
    "movement",
    "entry_count",
    "version",
)
BATCH_ROWS = 65_536


def write_parquet(statement: Statement, handle: BinaryIO) -> dict[str, object]:
    head = header(statement)
    meta = {key: head[key] for key in HEADER_KEYS}
    schema = PARQUET_SCHEMA.with_metadata({METADATA_KEY: json.dumps(meta).encode()})
    names = {t.key: t.name for t in statement.totals_by_ledger_account}
    lines = statement.lines
    total = Decimal(0)
    last = format(statement.opening_balance, "f")
    with pq.ParquetWriter(handle, schema, compression="zstd") as writer, localcontext() as ctx:
        ctx.prec = 60
        for offset in range(0, max(len(lines), 1), BATCH_ROWS):
            chunk = lines[offset : offset + BATCH_ROWS]
            entries = [line.entry for line in chunk]
            amounts = pa.array([e.amount for e in entries], MONEY)
            running = pa.array([line.running_balance for line in chunk], MONEY)
            columns = [
                pa.array([e.posted_at for e in entries], INSTANT),
                pa.array([e.reference for e in entries], pa.string()),
                pa.array([e.transaction_type for e in entries], pa.string()),
                pa.array([e.instrument for e in entries], pa.string()),
                amounts,
                pa.array([e.currency for e in entries], pa.string()),
                pa.array([e.status for e in entries], pa.string()),
                running,
                pa.array([e.ledger_account for e in entries], pa.string()),
                pa.array([names.get(e.ledger_account) for e in entries], pa.string()),
                pa.array([e.deal_id for e in entries], pa.string()),
                pa.array([e.note for e in entries], pa.string()),
                pa.array([e.flags for e in entries], pa.string()),
            ]
            writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=schema))
            if entries:
                total += pc.sum(amounts).as_py()
                last = format(running[-1].as_py(), "f")
    return {"rows": len(lines), "amount_sum": format(total, "f"), "closing_balance": last}
