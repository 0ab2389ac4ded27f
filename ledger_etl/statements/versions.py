"""Published versions of one account-month: the `v<N>` folders, `versions.json`, diffs.

The folders are the source of truth; `versions.json` is derived from them and rewritten by every
publish (an unchanged one too) and by `ledger-etl verify --repair`, so an index left stale by a
crash or a full disk heals. A version that cannot be trusted (unreadable manifest, a link, a
manifest that contradicts its folder, or any problem `verify` finds) is *damaged*: it is never
the current version, never a diff's base, and it is never changed or deleted. `versions.json`
lists it as damaged with the problems found and a fingerprint of what the folder held then, so
`verify` can tell recorded damage (kept as evidence) from new damage.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

from ledger_etl.statements.document import entry_doc
from ledger_etl.statements.layout import MANIFEST_FILE, STATEMENT_JSON, VERSIONS_FILE
from ledger_etl.statements.model import ChangedEntry, Statement, StatementDiff
from ledger_etl.statements.paths import (
    StatementError,
    atomic_write,
    read_regular,
    version_number,
)

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
    content_hash: str | None
    manifest_sha256: str | None
    statement_status: str | None
    generated_at: str | None
    damage: tuple[str, ...] = ()  # why the version cannot be trusted; empty when it can
    recorded: bool = False  # the damage is recorded in versions.json

    @property
    def damaged(self) -> bool:
        return bool(self.damage)


def scan_versions(month_dir: Path, recorded: bool = True) -> list[PublishedVersion]:
    """Every `v<N>` folder under `month_dir`, damaged ones included, oldest first; with
    `recorded`, a version `versions.json` records as damaged stays damaged."""
    if not month_dir.is_dir() or month_dir.is_symlink():
        return []
    records = damage_records(read_index(month_dir)[0]) if recorded else {}
    found = []
    for child in month_dir.iterdir():
        number = version_number(child.name)
        if number is None:
            continue
        version = _read_version(number, child)
        record = records.get(child.name)
        if record is not None:
            problems = tuple(str(p) for p in record.get("problems") or ()) or version.damage
            version = _with_damage(version, problems or ("recorded as damaged",), True)
        found.append(version)
    return sorted(found, key=lambda v: v.version)


def sound_versions(versions: list[PublishedVersion]) -> list[PublishedVersion]:
    return [v for v in versions if not v.damaged]


def _with_damage(v: PublishedVersion, damage: tuple[str, ...], recorded: bool) -> PublishedVersion:
    return PublishedVersion(
        v.version,
        v.folder,
        v.content_hash,
        v.manifest_sha256,
        v.statement_status,
        v.generated_at,
        damage,
        recorded,
    )


# Published manifests never change in place; a parsed one is reused while the file's identity
# (device, inode, size, mtime) is the same, so listing many months does not re-parse them all.
_MANIFESTS: dict[Path, tuple[tuple[int, int, int, int], PublishedVersion]] = {}


def _read_version(number: int, folder: Path) -> PublishedVersion:
    """The version as its manifest states it, with what is visibly wrong (no file is hashed)."""
    if folder.is_symlink() or not folder.is_dir():
        what = "a symbolic link" if folder.is_symlink() else "not a folder"
        return PublishedVersion(
            number, folder, None, None, None, None, (f"{folder.name} is {what}",)
        )
    manifest = folder / MANIFEST_FILE
    try:
        info = manifest.lstat()
        identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        cached = _MANIFESTS.get(manifest)
        if cached is not None and cached[0] == identity and cached[1].version == number:
            parsed = cached[1]
        else:
            raw = read_regular(manifest)
            parsed = _parse_manifest(number, folder, raw)
            if len(_MANIFESTS) > 4096:
                _MANIFESTS.clear()
            _MANIFESTS[manifest] = (identity, parsed)
    except (OSError, StatementError) as exc:
        reason = "is missing" if isinstance(exc, FileNotFoundError) else f"cannot be read: {exc}"
        return PublishedVersion(
            number, folder, None, None, None, None, (f"{MANIFEST_FILE} {reason}",)
        )
    statement = folder / STATEMENT_JSON
    if statement.is_symlink():
        return _with_damage(parsed, (*parsed.damage, f"{STATEMENT_JSON} is a symbolic link"), False)
    if not statement.is_file():
        return _with_damage(parsed, (*parsed.damage, f"{STATEMENT_JSON} is missing"), False)
    return parsed


def _parse_manifest(number: int, folder: Path, raw: bytes) -> PublishedVersion:
    sha = hashlib.sha256(raw).hexdigest()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return PublishedVersion(
            number, folder, None, sha, None, None, (f"{MANIFEST_FILE} is not valid JSON: {exc}",)
        )
    if not isinstance(data, dict) or not isinstance(data.get("content_hash"), str):
        return PublishedVersion(
            number, folder, None, sha, None, None, (f"{MANIFEST_FILE} has no content_hash",)
        )
    damage = []
    month_dir = folder.parent
    for key, want in (
        ("version", number),
        ("month", month_dir.name),
        ("account_id", month_dir.parent.name),
    ):
        if data.get(key) != want:
            damage.append(f"{MANIFEST_FILE} says {key} {data.get(key)!r}, its folder says {want!r}")
    status = data.get("status")
    generated_at = data.get("generated_at")
    return PublishedVersion(
        number,
        folder,
        data["content_hash"],
        sha,
        status if isinstance(status, str) else None,
        generated_at if isinstance(generated_at, str) else None,
        tuple(damage),
    )


def next_version_number(month_dir: Path) -> int:
    """One past every `v<N>` name in use, complete or not, so no folder is ever reused."""
    numbers = [version_number(c.name) for c in month_dir.iterdir()] if month_dir.is_dir() else []
    return max((n for n in numbers if n is not None), default=0) + 1


# -- versions.json ---------------------------------------------------------------------------------
def read_index(month_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The parsed `versions.json`, or None and why it cannot be used."""
    path = month_dir / VERSIONS_FILE
    try:
        index = json.loads(read_regular(path))
    except FileNotFoundError:
        return None, f"{VERSIONS_FILE} is missing"
    except (OSError, ValueError, StatementError) as exc:
        return None, f"{VERSIONS_FILE} cannot be read: {exc}"
    if not isinstance(index, dict) or not isinstance(index.get("versions"), list):
        return None, f"{VERSIONS_FILE} has no list of versions"
    return index, None


def damage_records(index: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Folder name -> the damage recorded for it in `versions.json`."""
    out = {}
    for entry in (index or {}).get("versions", []):
        if isinstance(entry, dict) and isinstance(entry.get("damage"), dict):
            out[str(entry.get("folder"))] = entry["damage"]
    return out


def fingerprint(folder: Path) -> dict[str, str]:
    """What a folder holds, without following links: name -> sha256, link target or kind."""
    if folder.is_symlink():
        return {".": "symlink:" + os.readlink(folder)}
    if not folder.is_dir():
        return {".": "missing" if not folder.exists() else "not a folder"}
    out = {}
    for child in sorted(folder.iterdir()):
        if child.is_symlink():
            out[child.name] = "symlink:" + os.readlink(child)
        elif child.is_file():
            out[child.name] = hashlib.sha256(read_regular(child)).hexdigest()
        else:
            out[child.name] = "not a file"
    return out


def index_doc(
    month_dir: Path,
    account_id: str,
    month: str,
    versions: list[PublishedVersion],
    keep_records: bool = True,
) -> dict[str, Any]:
    """`versions.json` as the folders state it (damage records carried over or added)."""
    old = damage_records(read_index(month_dir)[0]) if keep_records else {}
    sound = [v.version for v in sound_versions(versions)]
    current = sound[-1] if sound else None
    entries = []
    for v in versions:
        entry: dict[str, Any] = {
            "version": v.version,
            "folder": v.folder.name,
            "state": "damaged"
            if v.damaged
            else "current"
            if v.version == current
            else "superseded",
            "superseded_by": None if v.damaged or v.version == current else _next(sound, v.version),
            "statement_status": v.statement_status,
            "content_hash": v.content_hash,
            "manifest_sha256": v.manifest_sha256,
            "generated_at": v.generated_at,
        }
        if v.damaged:
            kept = old.get(v.folder.name)
            entry["damage"] = (
                kept
                if kept is not None
                else {
                    "problems": list(v.damage),
                    "fingerprint": fingerprint(v.folder),
                }
            )
        entries.append(entry)
    return {
        "account_id": account_id,
        "month": month,
        "current_version": current,
        "versions": entries,
    }


def encode_index(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2) + "\n").encode()


def write_versions_index(
    month_dir: Path,
    account_id: str,
    month: str,
    found_damaged: dict[int, list[str]] | None = None,
    *,
    refresh: bool = False,
) -> bool:
    """Rewrite `versions.json` from the folders when it differs; `found_damaged` adds versions
    that a full verification found damaged. `refresh` drops the damage recorded before (the
    caller verified every version). Returns whether the file was written."""
    versions = [
        _with_damage(v, tuple(found_damaged[v.version]), False)
        if found_damaged and v.version in found_damaged and not v.damaged
        else v
        for v in scan_versions(month_dir, recorded=not refresh)
    ]
    doc = index_doc(month_dir, account_id, month, versions, keep_records=not refresh)
    content = encode_index(doc)
    try:
        if read_regular(month_dir / VERSIONS_FILE) == content:
            return False
    except (OSError, StatementError):
        pass
    atomic_write(month_dir / VERSIONS_FILE, content)
    return True


def _next(sound: list[int], number: int) -> int | None:
    later = [n for n in sound if n > number]
    return min(later) if later else None


def compute_diff(previous: PublishedVersion, statement: Statement) -> StatementDiff:
    """Entries added, changed and removed (by reference) since `previous`, and balance deltas."""
    before_doc = json.loads(read_regular(previous.folder / STATEMENT_JSON))
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
