"""Read published statements: `<root>/<account>/<YYYY-MM>/v<N>/`, per account and month.

The one reader of the export tree. Dagster checks, the demo, the CLI and services use it
instead of re-deriving paths: list accounts, months and versions, take the latest, open a
listed file, read the statement document, verify. Nothing here writes.

A version folder never changes once it is renamed into place (its files are read-only), so a
parsed manifest is cached by the manifest's identity (device, inode, size, mtime); a folder
replaced by hand is read again. A damaged version (see `versions.py`) is never listed as a
version or taken as the latest; `damaged` lists them.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ledger_etl.statements.paths import (
    StatementError,
    UnsafeNameError,
    parse_month,
    validate_account_id,
)
from ledger_etl.statements.verify import verify_version
from ledger_etl.statements.versions import (
    MANIFEST_FILE,
    STATEMENT_JSON,
    PublishedVersion,
    scan_versions,
    sound_versions,
)


class NotPublishedError(StatementError):
    """No published version (or no such file in it) for the account and month asked for."""


@dataclass(frozen=True)
class PublishedSummary:
    """The current version of one account-month, as a listing shows it."""

    account_id: str
    month: str
    version: int
    versions: int
    status: str
    reconciliation: str
    opening_balance: str
    closing_balance: str
    currency: str
    entries: int
    folder: Path


class PublishedStatements:
    """Published statements under one export root."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # -- listing ---------------------------------------------------------------------------
    def accounts(self) -> list[str]:
        """Account ids that have a folder under the root (sorted; unsafe names ignored)."""
        return sorted(name for name in _child_dirs(self.root) if _is_account(name))

    def months(self, account_id: str) -> list[str]:
        """`YYYY-MM` months of the account with at least one complete version, oldest first."""
        account_dir = self.root / validate_account_id(account_id)
        return sorted(
            name
            for name in _child_dirs(account_dir)
            if _is_month(name) and self.versions(account_id, name)
        )

    def versions(self, account_id: str, month: str) -> list[PublishedVersion]:
        """The versions of an account-month that are not damaged, oldest first."""
        return sound_versions(scan_versions(self.month_dir(account_id, month)))

    def damaged(self, account_id: str, month: str) -> list[PublishedVersion]:
        """The damaged versions of an account-month (kept as evidence), oldest first."""
        return [v for v in scan_versions(self.month_dir(account_id, month)) if v.damaged]

    def latest(self, account_id: str, month: str) -> PublishedVersion | None:
        versions = self.versions(account_id, month)
        return versions[-1] if versions else None

    def version(self, account_id: str, month: str, number: int | None = None) -> PublishedVersion:
        """Version `number`, or the latest; `NotPublishedError` when there is none."""
        versions = self.versions(account_id, month)
        if number is None and versions:
            return versions[-1]
        for found in versions:
            if found.version == number:
                return found
        which = "any version" if number is None else f"version {number}"
        raise NotPublishedError(f"{account_id} {month}: {which} is not published")

    def summaries(
        self, account_id: str | None = None, month: str | None = None
    ) -> Iterator[PublishedSummary]:
        """The current version of every account-month (optionally one account or month)."""
        accounts = [validate_account_id(account_id)] if account_id else self.accounts()
        for account in accounts:
            months = [parse_month(month).label] if month else self.months(account)
            for label in months:
                versions = self.versions(account, label)
                if not versions:
                    continue
                latest = versions[-1]
                doc = self.document(account, label, latest.version)
                yield PublishedSummary(
                    account_id=account,
                    month=label,
                    version=latest.version,
                    versions=len(versions),
                    status=doc["status"],
                    reconciliation=doc["reconciliation"]["status"],
                    opening_balance=doc["opening_balance"],
                    closing_balance=doc["closing_balance"],
                    currency=doc["currency"],
                    entries=len(doc["entries"]),
                    folder=latest.folder,
                )

    # -- reading ---------------------------------------------------------------------------
    def month_dir(self, account_id: str, month: str) -> Path:
        return self.root / validate_account_id(account_id) / parse_month(month).label

    def manifest(self, account_id: str, month: str, number: int | None = None) -> dict[str, Any]:
        found = self.version(account_id, month, number)
        with self._open_in(found, MANIFEST_FILE) as handle:
            return json.load(handle)

    def document(self, account_id: str, month: str, number: int | None = None) -> dict[str, Any]:
        """The parsed `statement.json` of a version (the latest by default)."""
        with self.open(account_id, month, STATEMENT_JSON, number) as handle:
            return json.load(handle)

    def open(self, account_id: str, month: str, name: str, number: int | None = None) -> BinaryIO:
        """A published file, for reading: only names its manifest lists, never a symlink."""
        found = self.version(account_id, month, number)
        with self._open_in(found, MANIFEST_FILE) as handle:
            listed = json.load(handle)["files"]
        if name not in listed:
            raise NotPublishedError(
                f"{account_id} {month} v{found.version} has no file {name!r:.80}"
            )
        return self._open_in(found, name)

    def verify(self, account_id: str, month: str, number: int | None = None) -> list[str]:
        """Problems found in one version (the latest by default); empty means verified."""
        found = self.version(account_id, month, number)
        return [f"{found.folder}: {p}" for p in verify_version(found.folder)]

    @staticmethod
    def _open_in(found: PublishedVersion, name: str) -> BinaryIO:
        if "/" in name or "\\" in name or name in {"", ".", ".."}:
            raise UnsafeNameError(f"{name!r:.80} is not a file name")
        path = found.folder / name
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            raise NotPublishedError(f"{path} cannot be opened: {exc.strerror or exc}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise NotPublishedError(f"{path} is not a regular file")
        return os.fdopen(fd, "rb")


def _child_dirs(path: Path) -> list[str]:
    try:
        return [e.name for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _is_account(name: str) -> bool:
    try:
        validate_account_id(name)
    except UnsafeNameError:
        return False
    return True


def _is_month(name: str) -> bool:
    try:
        return parse_month(name).label == name
    except UnsafeNameError:
        return False
