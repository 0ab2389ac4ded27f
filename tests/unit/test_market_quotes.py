"""Quote files: atomic partitions, manifest with sha256, exact decimals, retention, rejections."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq

from ledger_etl.market.quotes import QuoteFiles, verify

TS = 1768478400000  # 2026-01-15T12:00:00Z


def test_rotation_writes_partitions_listed_with_sha256(tmp_path: Path) -> None:
    files = QuoteFiles(tmp_path)
    files.add("GOLD", TS, "2429.83", "2430.13")
    files.add("GOLD", TS + 1000, Decimal("2429.9"), Decimal("2430.2"))
    files.add("EURUSD", TS - 86_400_000, "1.08512", "1.08518")
    entries = files.rotate()
    assert sorted((e["date"], e["epic"], e["rows"]) for e in entries) == [
        ("2026-01-14", "EURUSD", 1), ("2026-01-15", "GOLD", 2)]  # fmt: skip
    assert verify(tmp_path) == []
    table = pq.read_table(tmp_path / entries[1]["path"])
    assert table.column("bid").to_pylist() == [Decimal("2429.83"), Decimal("2429.9")]
    assert files.rotate() == []  # nothing buffered, nothing written
    path = tmp_path / entries[1]["path"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert verify(tmp_path) == [f"{entries[1]['path']}: sha256 differs from the manifest"]


def test_a_price_that_is_not_exact_rejects_its_quote_only(tmp_path: Path) -> None:
    files = QuoteFiles(tmp_path)
    files.add("GOLD", TS, "2429.83", "2430.13")
    files.add("GOLD", TS + 1, "1.123456789", "1.2")  # nine decimal places: not exact in 8
    (entry,) = files.rotate()
    assert entry["rows"] == 1 and files.rows_rejected == 1


def test_orphans_removed_and_retention(tmp_path: Path) -> None:
    orphan = tmp_path / "date=2026-01-15" / "epic=GOLD" / "x.tmp"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"half a file")
    files = QuoteFiles(tmp_path, retention_days=30)
    assert not orphan.exists()
    files.add("GOLD", 1_000_000_000_000, "1", "2")  # 2001: older than any retention
    files.rotate()
    assert files.manifest()["files"] == [] and not list(tmp_path.glob("date=2001-*"))
