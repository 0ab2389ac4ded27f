"""Published versions of one account-month: the `v<N>` folders, `versions.json`, diffs.

The folders' manifests are the source of truth; `versions.json` is rewritten from them on every
publish, so an interrupted publish heals on the next one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

from ledger_etl.statements.document import entry_doc
from ledger_etl.statements.model import ChangedEntry, Statement, StatementDiff
from ledger_etl.statements.paths import atomic_write, version_number

VERSIONS_FILE = "versions.json"
MANIFEST_FILE = "manifest.json"
STATEMENT_JSON = "statement.json"
DIFF_FIELDS = (
    "posted_at",
    "type",
    "instrument",
    "amount",
    "currency",
    "status",
    "ledger_account",
    "deal_id",
    "note",
    "flags",
)


@dataclass(frozen=True)
class PublishedVersion:
    version: int
    folder: Path
    content_hash: str
    manifest_sha256: str
    statement_status: str
    generated_at: str | None


def scan_versions(month_dir: Path) -> list[PublishedVersion]:
    """The complete version folders under `month_dir`, oldest first."""
    found = []
    if not month_dir.is_dir():
        return found
    for child in month_dir.iterdir():
        number = version_number(child.name)
        manifest = child / MANIFEST_FILE
        if number is None or not child.is_dir() or not manifest.is_file():
            continue
        found.append(_read_manifest(number, child, manifest))
    return sorted(found, key=lambda v: v.version)


# Published manifests never change in place; a parsed one is reused while the file's identity
# (device, inode, size, mtime) is the same, so listing many months does not re-parse them all.
_MANIFESTS: dict[Path, tuple[tuple[int, int, int, int], PublishedVersion]] = {}


def _read_manifest(number: int, folder: Path, manifest: Path) -> PublishedVersion:
    info = manifest.stat()
    identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    cached = _MANIFESTS.get(manifest)
    if cached is not None and cached[0] == identity and cached[1].version == number:
        return cached[1]
    raw = manifest.read_bytes()
    data = json.loads(raw)
    parsed = PublishedVersion(
        number,
        folder,
        data["content_hash"],
        hashlib.sha256(raw).hexdigest(),
        data.get("status", ""),
        data.get("generated_at"),
    )
    if len(_MANIFESTS) > 4096:
        _MANIFESTS.clear()
    _MANIFESTS[manifest] = (identity, parsed)
    return parsed


def next_version_number(month_dir: Path) -> int:
    """One past every `v<N>` name in use, complete or not, so no folder is ever reused."""
    numbers = [version_number(c.name) for c in month_dir.iterdir()] if month_dir.is_dir() else []
    return max((n for n in numbers if n is not None), default=0) + 1


def write_versions_index(month_dir: Path, account_id: str, month: str) -> None:
    versions = scan_versions(month_dir)
    current = versions[-1].version if versions else None
    doc: dict[str, Any] = {
        "account_id": account_id,
        "month": month,
        "current_version": current,
        "versions": [
            {
                "version": v.version,
                "folder": v.folder.name,
                "state": "current" if v.version == current else "superseded",
                "superseded_by": None if v.version == current else _next(versions, v.version),
                "statement_status": v.statement_status,
                "content_hash": v.content_hash,
                "manifest_sha256": v.manifest_sha256,
                "generated_at": v.generated_at,
            }
            for v in versions
        ],
    }
    atomic_write(month_dir / VERSIONS_FILE, (json.dumps(doc, indent=2) + "\n").encode())


def _next(versions: list[PublishedVersion], number: int) -> int | None:
    later = [v.version for v in versions if v.version > number]
    return min(later) if later else None


def compute_diff(previous: PublishedVersion, statement: Statement) -> StatementDiff:
    """Entries added, changed and removed (by reference) since `previous`, and balance deltas."""
    with (previous.folder / STATEMENT_JSON).open("rb") as handle:
        before_doc = json.load(handle)
    before = {e["reference"]: e for e in before_doc["entries"]}
    added: list[str] = []
    changed: list[ChangedEntry] = []
    seen = set()
    for line in statement.lines:
        doc = entry_doc(line)
        reference = doc["reference"]
        seen.add(reference)
        old = before.get(reference)
        if old is None:
            added.append(reference)
            continue
        fields = tuple(
            (name, old.get(name), doc[name]) for name in DIFF_FIELDS if old.get(name) != doc[name]
        )
        if fields:
            changed.append(ChangedEntry(reference, fields))
    removed = sorted(reference for reference in before if reference not in seen)
    with localcontext() as ctx:
        ctx.prec = 60
        opening_delta = statement.opening_balance - Decimal(before_doc["opening_balance"])
        closing_delta = statement.closing_balance - Decimal(before_doc["closing_balance"])
    return StatementDiff(
        previous_version=previous.version,
        previous_content_hash=previous.content_hash,
        added=tuple(added),
        changed=tuple(changed),
        removed=tuple(removed),
        opening_delta=opening_delta,
        closing_delta=closing_delta,
    )
