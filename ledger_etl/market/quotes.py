"""Raw quotes to Parquet, partitioned by date and epic, each file atomic and in a manifest.

Layout: `<root>/date=YYYY-MM-DD/epic=EPIC/quotes-<first ms>-<last ms>-<n>.parquet`. A rotation
writes every buffered partition to a temporary file, fsyncs it, renames it into place, and only
then adds it (name, rows, sha256) to its partition's `manifest.json` (one per date and epic, so a
rewrite stays small however long the stream runs), itself replaced atomically. A process
killed at any point leaves at worst an unlisted `*.tmp` file (removed by the next start) and never
a listed file that is cut short: readers trust the manifest, `verify` checks it.
Prices are decimal128 (exact, the wire's decimals); times are UTC milliseconds.
Retention: date partitions older than `retention_days` are removed at rotation, with their
manifests.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

log = logging.getLogger("ledger_etl.market.quotes")

SCHEMA = pa.schema(
    [
        ("epic", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("bid", pa.decimal128(24, 8)),
        ("ask", pa.decimal128(24, 8)),
    ]
)
MANIFEST = "manifest.json"


@dataclass
class _Buffer:
    ts: list[int] = field(default_factory=list)
    bid: list[str] = field(default_factory=list)  # exact decimal texts, as on the wire
    ask: list[str] = field(default_factory=list)


class QuoteFiles:
    def __init__(self, root: Path, *, retention_days: int | None = None) -> None:
        self.root = root
        self.retention_days = retention_days
        self.root.mkdir(parents=True, exist_ok=True)
        self._buffers: dict[tuple[str, str], _Buffer] = {}
        self._by_day_epic: dict[tuple[int, str], _Buffer] = {}  # the same, by day number
        self.rows_written = 0
        self.rows_rejected = 0
        self._days: dict[int, str] = {}
        for orphan in self.root.rglob("*.tmp"):  # left by a process killed mid-write
            orphan.unlink(missing_ok=True)
        # Arrow loads its cast kernels on first use: once here, not in the first rotation.
        pc.cast(pa.array(["1.5"]), SCHEMA.field("bid").type)

    def add(self, epic: str, ts_ms: int, bid: str | Decimal, ask: str | Decimal) -> None:
        """Buffer one quote; prices as exact decimal text (or Decimal)."""
        buffer = self._by_day_epic.get((ts_ms // 86_400_000, epic))
        if buffer is None:
            buffer = self._buffer(ts_ms // 86_400_000, epic)
        buffer.ts.append(ts_ms)
        buffer.bid.append(bid if type(bid) is str else str(bid))
        buffer.ask.append(ask if type(ask) is str else str(ask))

    def _buffer(self, index: int, epic: str) -> _Buffer:
        day = self._days.get(index)
        if day is None:
            day = self._days[index] = datetime.fromtimestamp(index * 86_400, UTC).date().isoformat()
        buffer = self._buffers.get((day, epic))
        if buffer is None:
            buffer = self._buffers[(day, epic)] = _Buffer()
        self._by_day_epic[(index, epic)] = buffer
        return buffer

    @property
    def buffered(self) -> int:
        return sum(len(b.ts) for b in self._buffers.values())

    def take(self) -> dict[tuple[str, str], _Buffer]:
        """The buffered quotes, handed over for writing (call it where `add` is called)."""
        buffers, self._buffers = self._buffers, {}
        self._by_day_epic = {}
        return buffers

    def rotate(self, buffers: dict[tuple[str, str], _Buffer] | None = None) -> list[dict[str, Any]]:
        """Write every buffered partition (or `buffers` taken earlier); returns the manifest
        entries added."""
        if buffers is None:
            buffers = self.take()
        parts = [(day, epic, b) for (day, epic), b in sorted(buffers.items()) if b.ts]
        # Partitions are independent (a folder and a manifest each): written side by side, so
        # their fsyncs overlap instead of queueing; each manifest still follows its own file.
        if len(parts) > 1:
            with ThreadPoolExecutor(min(8, len(parts)), thread_name_prefix="quotes") as pool:
                done = list(pool.map(lambda part: self._write_listed(*part), parts))
        else:
            done = [self._write_listed(*part) for part in parts]
        entries = [entry for entry, _ in done]
        self.rows_written += sum(entry["rows"] for entry in entries)
        self.rows_rejected += sum(rejected for _, rejected in done)
        self._apply_retention()
        pa.default_memory_pool().release_unused()  # a long-running stream keeps a flat footprint
        return entries

    def _write_listed(self, day: str, epic: str, buffer: _Buffer) -> tuple[dict[str, Any], int]:
        """One partition's file, then its manifest entry; (entry, quotes rejected)."""
        entry, rejected = self._write(day, epic, buffer)
        folder = self.root / Path(entry["path"]).parent
        listed = _read_manifest(folder)
        listed["files"].append(entry)
        _save_manifest(folder, listed)
        return entry, rejected

    def _columns(self, buffer: _Buffer) -> tuple[list[int], pa.Array, pa.Array, int]:
        """Times and exact decimal columns, and how many quotes were rejected: a price that
        decimal128(24, 8) cannot hold exactly rejects its quote (logged), never the file."""
        kind = SCHEMA.field("bid").type
        try:
            return (buffer.ts, pc.cast(pa.array(buffer.bid, pa.string()), kind),
                    pc.cast(pa.array(buffer.ask, pa.string()), kind), 0)  # fmt: skip
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        ts, bids, asks, rejected = [], [], [], 0
        for t, bid, ask in zip(buffer.ts, buffer.bid, buffer.ask, strict=True):
            try:
                pair = [pc.cast(pa.array([v]), kind)[0].as_py() for v in (bid, ask)]
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                rejected += 1
                log.warning(
                    "quote at %d rejected: price %r / %r not exact in 8 places", t, bid, ask
                )
                continue
            ts.append(t)
            bids.append(pair[0])
            asks.append(pair[1])
        return ts, pa.array(bids, kind), pa.array(asks, kind), rejected

    def _write(self, day: str, epic: str, buffer: _Buffer) -> tuple[dict[str, Any], int]:
        ts, bid, ask, rejected = self._columns(buffer)
        table = pa.table(
            {"epic": pa.array([epic] * len(ts)), "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")),
             "bid": bid, "ask": ask},
            schema=SCHEMA,
        )  # fmt: skip
        folder = self.root / f"date={day}" / f"epic={epic}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"quotes-{buffer.ts[0]}-{buffer.ts[-1]}-{len(buffer.ts)}.parquet"
        final = folder / name
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        data = sink.getvalue()  # hashed as written, not read back
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp.name, final)
        _fsync_dir(folder)
        entry = {"path": str(final.relative_to(self.root)), "date": day, "epic": epic,
                 "rows": len(ts), "sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip
        return entry, rejected

    def manifest(self) -> dict[str, Any]:
        """Every listed file of every partition (the union of the partition manifests)."""
        files = []
        for path in sorted(self.root.glob(f"date=*/epic=*/{MANIFEST}")):
            files.extend(_read_manifest(path.parent)["files"])
        return {"files": files}

    def _apply_retention(self) -> None:
        if self.retention_days is None:
            return
        cutoff = (datetime.now(UTC) - timedelta(days=self.retention_days)).date()
        for folder in self.root.glob("date=*"):
            if date.fromisoformat(folder.name[5:]) < cutoff:
                shutil.rmtree(folder, ignore_errors=True)


def verify(root: Path) -> list[str]:
    """Problems with the quote files: a listed file missing or differing from its sha256."""
    files = QuoteFiles.__new__(QuoteFiles)
    files.root = root
    problems = []
    for entry in files.manifest()["files"]:
        path = root / entry["path"]
        if not path.exists():
            problems.append(f"{entry['path']}: listed but missing")
        elif _sha256(path) != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 differs from the manifest")
    return problems


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.exists():
        return {"files": []}
    return json.loads(path.read_text(encoding="utf-8"))


def _save_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    data = (json.dumps(manifest, indent=1) + "\n").encode()
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as tmp:
        tmp.write(data)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, folder / MANIFEST)
    _fsync_dir(folder)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
