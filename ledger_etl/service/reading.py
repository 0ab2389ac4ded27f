"""What the service reads from the export tree: listings, statement headers, verified files.

Every byte served, and every statement document answered from, is first checked against the
sha256 its manifest records. A file that does not match is never served: the caller gets
`TamperedFile`, which the app turns into a 500, an audit row and an alert line.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Engine

from ledger_etl.service.audit import ALERTS_DIR
from ledger_etl.service.users import User
from ledger_etl.statements.layout import STATEMENT_JSON
from ledger_etl.statements.paths import StatementError
from ledger_etl.statements.published import PublishedStatements
from ledger_etl.statements.query import list_accounts

IN_MEMORY_LIMIT = 64 * 1024 * 1024  # files up to this size are read once, hashed and sent
CHUNK = 1024 * 1024
# Keys of statement.json left out of a statement's JSON answer: the rows (the files carry them).
BULKY_KEYS = ("entries", "activity", "fetches")


class TamperedFile(StatementError):
    """A published file whose bytes do not match the sha256 in its manifest."""

    def __init__(self, path: Path, expected: str, found: str) -> None:
        super().__init__(f"{path}: sha256 {found} does not match the manifest's {expected}")
        self.path, self.expected, self.found = path, expected, found


@dataclass(frozen=True)
class VerifiedFile:
    name: str
    path: Path
    sha256: str
    size: int
    body: bytes | None  # the whole file, when small enough
    handle: BinaryIO | None  # otherwise the open file, verified once, re-checked while sent


def visible_accounts(reader: PublishedStatements, engine: Engine, user: User) -> list[str]:
    """Accounts with statements or ledger entries that the user may read."""
    known = {a for a in reader.accounts() if a != ALERTS_DIR} | set(list_accounts(engine))
    return sorted(a for a in known if user.may_read(a))


def version_listing(reader: PublishedStatements, account: str, month: str) -> dict[str, Any]:
    """One account-month: its versions with status and reconciliation, and the current totals."""
    versions = reader.versions(account, month)
    items = []
    for v in versions:
        manifest = reader.manifest(account, month, v.version)
        items.append(
            {
                "version": v.version,
                "status": manifest.get("status"),
                "reconciliation": manifest.get("reconciliation"),
                "totals": manifest.get("totals"),
                "generated_at": manifest.get("generated_at"),
                "content_hash": manifest.get("content_hash"),
                "files": sorted(manifest.get("files", {})),
                "diff": manifest.get("diff"),
            }
        )
    current = items[-1] if items else {}
    for item, nxt in zip(items, [*items[1:], None], strict=True):
        item["superseded_by"] = nxt["version"] if nxt else None
    return {
        "account_id": account,
        "month": month,
        "current_version": current.get("version"),
        "status": current.get("status"),
        "reconciliation": current.get("reconciliation"),
        "totals": current.get("totals"),
        "versions": items,
    }


def statement_detail(reader: PublishedStatements, account: str, month: str, number: int | None):
    """A version's statement header (verified statement.json), its manifest facts, its own diff
    and, when superseded, the diff of the version that replaced it."""
    found = reader.version(account, month, number)
    manifest = reader.manifest(account, month, found.version)
    raw = read_verified(reader, account, month, found.version, STATEMENT_JSON, manifest)
    doc = json.loads(raw.body if raw.body is not None else _drain(raw))
    header = {k: v for k, v in doc.items() if k not in BULKY_KEYS}
    if isinstance(header.get("coverage"), dict):  # its fetch list can run to thousands of rows
        header["coverage"] = {k: v for k, v in header["coverage"].items() if k != "fetches"}
    later = [v.version for v in reader.versions(account, month) if v.version > found.version]
    superseded = None
    if later:
        nxt = reader.manifest(account, month, later[0])
        superseded = {"version": later[0], "diff": nxt.get("diff")}
    return {
        "account_id": account,
        "month": month,
        "version": found.version,
        "current": not later,
        "status": manifest.get("status"),
        "reconciliation": manifest.get("reconciliation"),
        "totals": manifest.get("totals"),
        "generated_at": manifest.get("generated_at"),
        "content_hash": manifest.get("content_hash"),
        "files": {
            name: {"sha256": f.get("sha256"), "bytes": f.get("bytes")}
            for name, f in sorted(manifest.get("files", {}).items())
        },
        "diff": manifest.get("diff"),
        "superseded_by": superseded,
        "statement": header,
    }


def read_verified(
    reader: PublishedStatements,
    account: str,
    month: str,
    number: int,
    name: str,
    manifest: dict[str, Any] | None = None,
) -> VerifiedFile:
    """Open a listed file of a version and check its sha256 against the manifest."""
    manifest = manifest or reader.manifest(account, month, number)
    expected = str((manifest.get("files", {}).get(name) or {}).get("sha256") or "")
    path = reader.version(account, month, number).folder / name
    handle = reader.open(account, month, name, number)
    try:
        size = os.fstat(handle.fileno()).st_size
        digest = hashlib.sha256()
        if size <= IN_MEMORY_LIMIT:
            body = handle.read()
            digest.update(body)
        else:
            body = None
            for block in iter(lambda: handle.read(CHUNK), b""):
                digest.update(block)
        found = digest.hexdigest()
        if found != expected:
            raise TamperedFile(path, expected, found)
    except BaseException:
        handle.close()
        raise
    if body is not None:
        handle.close()
        return VerifiedFile(name, path, found, len(body), body, None)
    handle.seek(0)
    return VerifiedFile(name, path, found, size, None, handle)


def _drain(file: VerifiedFile) -> bytes:
    return b"".join(stream_verified(file))


def stream_verified(file: VerifiedFile) -> Iterator[bytes]:
    """The bytes of a large verified file, hashed again as they go: if the file changed since
    it was verified, the stream stops short (the client sees a truncated download, never a
    complete tampered one)."""
    if file.body is not None:
        yield file.body
        return
    assert file.handle is not None
    digest = hashlib.sha256()
    sent = 0
    try:
        while True:
            block = file.handle.read(CHUNK)
            if not block:
                break
            digest.update(block)
            sent += len(block)
            if sent == file.size and digest.hexdigest() != file.sha256:
                raise TamperedFile(file.path, file.sha256, digest.hexdigest())
            if sent > file.size:
                raise TamperedFile(file.path, file.sha256, "(grew)")
            yield block
    finally:
        file.handle.close()
