"""What the service reads from the export tree: listings, statement headers, verified files.

Every byte served, and every statement document answered from, is first checked against the
sha256 its manifest records. A file that does not match is never served: the caller gets
`TamperedFile`, which the app turns into a 500, an audit row and an alert line.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Engine

from ledger_etl.service.audit import ALERTS_DIR
from ledger_etl.service.users import User
from ledger_etl.statements.layout import MANIFEST_FILE, STATEMENT_JSON
from ledger_etl.statements.paths import StatementError, open_regular
from ledger_etl.statements.published import NotPublishedError, PublishedStatements
from ledger_etl.statements.query import list_accounts
from ledger_etl.statements.versions import PublishedVersion

_MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
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


def published_accounts(reader: PublishedStatements, user: User) -> list[str]:
    """Accounts with a folder in the export tree that the user may read: the only ones that can
    have statements (the ledger's other accounts need no database query to be left out)."""
    return [a for a in reader.accounts() if a != ALERTS_DIR and user.may_read(a)]


# Parsed manifests by file identity (device, inode, size, mtime): a published manifest never
# changes in place, and one edited or replaced by hand has a new identity, so it is read again.
_MANIFESTS: dict[Path, tuple[tuple[int, int, int, int], dict[str, Any]]] = {}


def manifest_of(found: PublishedVersion) -> dict[str, Any]:
    """The parsed manifest of a version found by the reader (never through a link)."""
    path = found.folder / MANIFEST_FILE
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        cached = _MANIFESTS.get(path)
        if cached is not None and cached[0] == identity:
            return cached[1]
        parsed = json.loads(handle.read())
    if len(_MANIFESTS) > 8192:
        _MANIFESTS.clear()
    _MANIFESTS[path] = (identity, parsed)
    return parsed


def version_listing(
    reader: PublishedStatements,
    account: str,
    month: str,
    versions: list[PublishedVersion] | None = None,
) -> dict[str, Any]:
    """One account-month: its versions with status and reconciliation, and the current totals."""
    versions = reader.versions(account, month) if versions is None else versions
    items = []
    for v in versions:
        manifest = manifest_of(v)
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


def month_names(reader: PublishedStatements, account: str) -> list[str]:
    """`YYYY-MM` folder names of an account (not yet checked for a complete version)."""
    try:
        names = [
            e.name for e in os.scandir(reader.root / account) if e.is_dir(follow_symlinks=False)
        ]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(n for n in names if _MONTH.match(n))


def find_version(
    reader: PublishedStatements, account: str, month: str, number: int | None
) -> tuple[PublishedVersion, list[PublishedVersion]]:
    """Version `number` (or the latest) and every sound version of the month, in one scan."""
    versions = reader.versions(account, month)
    for v in versions:
        if v.version == number:
            return v, versions
    if number is None and versions:
        return versions[-1], versions
    raise NotPublishedError(f"{account} {month}: the version asked for is not published")


def statement_detail(reader: PublishedStatements, account: str, month: str, number: int | None):
    """A version's statement header (verified statement.json), its manifest facts, its own diff
    and, when superseded, the diff of the version that replaced it."""
    found, versions = find_version(reader, account, month, number)
    manifest = manifest_of(found)
    raw = read_verified(found, STATEMENT_JSON, manifest)
    doc = json.loads(raw.body if raw.body is not None else _drain(raw))
    header = {k: v for k, v in doc.items() if k not in BULKY_KEYS}
    if isinstance(header.get("coverage"), dict):  # its fetch list can run to thousands of rows
        header["coverage"] = {k: v for k, v in header["coverage"].items() if k != "fetches"}
    later = [v for v in versions if v.version > found.version]
    superseded = None
    if later:
        superseded = {"version": later[0].version, "diff": manifest_of(later[0]).get("diff")}
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


def open_listed(found: PublishedVersion, name: str, manifest: dict[str, Any]) -> BinaryIO:
    """A file the manifest lists, opened without following a link; nothing else."""
    files = manifest.get("files")
    if not isinstance(files, dict) or name not in files or "/" in name or "\\" in name:
        raise NotPublishedError(f"{found.folder.name} has no file {name!r:.80}")
    try:
        return os.fdopen(open_regular(found.folder / name), "rb")
    except OSError as exc:
        raise NotPublishedError(f"{found.folder / name} cannot be opened: {exc}") from None


def read_verified(found: PublishedVersion, name: str, manifest: dict[str, Any]) -> VerifiedFile:
    """Open a listed file of a version and check its sha256 against the manifest."""
    expected = str((manifest["files"].get(name) or {}).get("sha256") or "")
    path = found.folder / name
    handle = open_listed(found, name, manifest)
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
        found_sha = digest.hexdigest()
        if found_sha != expected:
            raise TamperedFile(path, expected, found_sha)
    except BaseException:
        handle.close()
        raise
    if body is not None:
        handle.close()
        return VerifiedFile(name, path, found_sha, len(body), body, None)
    handle.seek(0)
    return VerifiedFile(name, path, found_sha, size, None, handle)


def read_published(
    reader: PublishedStatements, account: str, month: str, number: int, name: str
) -> VerifiedFile:
    found, _ = find_version(reader, account, month, number)
    return read_verified(found, name, manifest_of(found))


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
