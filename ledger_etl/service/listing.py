"""Statement listings kept between requests while the files they were read from are unchanged.

`GET /api/statements` lists every account-month in scope. Reading it afresh each time means,
per month, a `versions.json` and a manifest per version read and parsed and a dozen path
operations: tens of milliseconds of CPU for a few dozen months, which 50 clients at once turn
into seconds. Here each month's listing is kept with the identity (inode, mode, size, mtime,
ctime; lstat, never following a link) of everything it was read from: the month folder,
`versions.json`, and every `v<N>` entry with its `manifest.json` and `statement.json`. It is
reused only while all of them are the same. A publish, a rename or a removal changes the month
folder; an edit or a chmod in place changes the file: either way the month is read again,
exactly as before. A check costs a few lstat calls per month and no file is opened.

A file changed twice within one tick of the file system's clock could keep its identity, so a
listing any of whose times is less than `RACY_SECONDS` old is not kept (the month is read again
on the next request).
"""

from __future__ import annotations

import os
import stat
import threading
import time
from dataclasses import dataclass
from typing import Any

from ledger_etl.service.reading import month_names, version_listing
from ledger_etl.statements.layout import MANIFEST_FILE, STATEMENT_JSON, VERSIONS_FILE
from ledger_etl.statements.paths import validate_account_id, version_number
from ledger_etl.statements.published import PublishedStatements

RACY_SECONDS = 2.0
MAX_MONTHS = 50_000  # kept listings; past this the cache starts again empty

Identity = tuple[int, int, int, int, int] | int  # an lstat identity, or the errno of its failure


def _look(path: str) -> Identity:
    try:
        info = os.lstat(path)
    except OSError as exc:
        return exc.errno or -1
    return (info.st_ino, info.st_mode, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _read_from(month_dir: str) -> tuple[str, ...]:
    """The paths a month's listing is read from, besides the folder itself."""
    paths = []
    for name in os.listdir(month_dir):
        path = os.path.join(month_dir, name)
        if name == VERSIONS_FILE:
            paths.append(path)
        elif version_number(name) is not None:
            paths += [path, os.path.join(path, MANIFEST_FILE), os.path.join(path, STATEMENT_JSON)]
    return tuple(sorted(paths))


@dataclass(frozen=True)
class _Kept:
    folder: Identity
    paths: tuple[str, ...]
    found: tuple[Identity, ...]
    listing: dict[str, Any] | None


def _newest(identities: tuple[Identity, ...]) -> int:
    return max((max(i[3], i[4]) for i in identities if isinstance(i, tuple)), default=0)


class ListingCache:
    """Month listings (`reading.version_listing`) by export root, account and month."""

    def __init__(self) -> None:
        self._kept: dict[tuple[str, str, str], _Kept] = {}
        self._lock = threading.Lock()

    def month(self, reader: PublishedStatements, account: str, month: str) -> dict[str, Any] | None:
        """The listing of one account-month (never to be changed by the caller), or None when
        it has no sound version."""
        reader.month_dir(account, month)  # validates both names
        return self._month(reader, str(reader.root), account, month)

    def account(self, reader: PublishedStatements, account: str) -> list[dict[str, Any]]:
        """Every published month of an account, oldest first."""
        root = str(reader.root)
        validate_account_id(account)
        found = (self._month(reader, root, account, m) for m in month_names(reader, account))
        return [listing for listing in found if listing is not None]

    def _month(
        self, reader: PublishedStatements, root: str, account: str, month: str
    ) -> dict[str, Any] | None:
        month_dir = os.path.join(root, account, month)
        key = (root, account, month)
        folder = _look(month_dir)
        if not isinstance(folder, tuple) or not stat.S_ISDIR(folder[1]):
            return None  # no folder (or a link, or a file): nothing is published there
        kept = self._kept.get(key)
        if kept is not None and kept.folder == folder:
            if tuple(_look(p) for p in kept.paths) == kept.found:
                return kept.listing
        # Identities first, files after: a change made while they are read shows next time.
        try:
            paths = _read_from(month_dir)
        except OSError:
            paths = None
        found = tuple(_look(p) for p in paths or ())
        versions = reader.versions(account, month)
        listing = version_listing(reader, account, month, versions) if versions else None
        racy = _newest((folder, *found)) > time.time_ns() - int(RACY_SECONDS * 1e9)
        if paths is not None and not racy:
            with self._lock:
                if len(self._kept) >= MAX_MONTHS:
                    self._kept.clear()
                self._kept[key] = _Kept(folder, paths, found, listing)
        return listing
