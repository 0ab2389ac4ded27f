"""What a published month holds: the names of its files, the publish lock, file hashes.

`<export dir>/<account>/<YYYY-MM>/` holds `v<N>/` version folders, `versions.json` (derived
from them) and `.publish.lock`; each version folder holds the statement files, `audit.jsonl`
and `manifest.json`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from ledger_etl.statements.paths import FILE_MODE, open_regular

FILE_NAMES = {
    "csv": "statement.csv",
    "xlsx": "statement.xlsx",
    "json": "statement.json",
    "parquet": "statement.parquet",
    "pdf": "statement.pdf",
}
AUDIT_FILE = "audit.jsonl"
MANIFEST_FILE = "manifest.json"
STATEMENT_JSON = "statement.json"
VERSIONS_FILE = "versions.json"
LOCK_FILE = ".publish.lock"
CENT = Decimal("0.005")  # xlsx holds floats: it must agree to the cent


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with os.fdopen(open_regular(path), "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def month_lock(month_dir: Path) -> Iterator[None]:
    """One writer per account-month at a time (across processes): publish and repair.

    The lock file is opened without following a link, so a link planted in its place cannot
    make the publisher create or chmod a file outside the export tree.
    """
    fd = open_regular(month_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
