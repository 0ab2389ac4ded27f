"""Safe names and durable files for published statements.

Folder and file names are built only from validated account ids and months. Files are written
atomically (temporary file in the same directory, fsync, `os.replace`, fsync of the directory)
with explicit permissions that do not depend on the process umask. Below the export directory
nothing is a symbolic link: a link there could make a publish write, or a reader trust, a file
outside the tree, so folders are checked with `lstat` and files are opened with `O_NOFOLLOW`.
"""

from __future__ import annotations

import os
import re
import stat
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, TypeVar

from ledger_etl.errors import InputError, LedgerEtlError
from ledger_etl.statements.model import Period

T = TypeVar("T")

FILE_MODE = 0o640
READ_ONLY_MODE = 0o440
DIR_MODE = 0o750

_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MONTH = re.compile(r"^([0-9]{4})-([0-9]{2})$")  # ASCII digits only: \d takes any script's
_VERSION_DIR = re.compile(r"^v([1-9][0-9]{0,8})$")


class StatementError(LedgerEtlError, ValueError):
    """A statement that cannot be built or published; the message says why."""


class UnsafeNameError(StatementError, InputError):
    """An account id or month that cannot safely become part of a path."""


class UnsafePathError(StatementError):
    """A symbolic link, or something other than a file or folder, inside the export tree."""


NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def refuse_link(path: Path) -> None:
    """Raise `UnsafePathError` when `path` is a symbolic link (a missing path is fine)."""
    if path.is_symlink():
        raise UnsafePathError(
            f"{path} is a symbolic link; published statements never follow links, so nothing "
            "was written: replace it with a real folder or file (or remove it)"
        )


def open_regular(path: Path, flags: int = os.O_RDONLY, mode: int = FILE_MODE) -> int:
    """A file descriptor of `path`, opened without following a link; only regular files."""
    try:
        fd = os.open(path, flags | NOFOLLOW, mode)
    except OSError as exc:
        if path.is_symlink():
            refuse_link(path)
        raise exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePathError(f"{path} is not a regular file")
    return fd


def read_regular(path: Path) -> bytes:
    """The bytes of a regular file, never through a link (`UnsafePathError` otherwise)."""
    with os.fdopen(open_regular(path), "rb") as handle:
        return handle.read()


def ensure_tree_dir(root: Path, *parts: str) -> Path:
    """`root/part/...`, creating what is missing; the parts below `root` must not be links
    (the root itself may be one: where the export directory lives is the operator's choice)."""
    path = ensure_dir(root)
    for part in parts:
        path = path / part
        refuse_link(path)
        ensure_dir(path)
        refuse_link(path)  # created by a racing process as a link
    return path


def validate_account_id(value: object) -> str:
    if not isinstance(value, str):
        raise UnsafeNameError(f"account id must be a string, got {type(value).__name__}")
    shown = repr(value[:80])
    if "\x00" in value:
        raise UnsafeNameError(f"account id {shown} contains a NUL byte")
    if value.startswith(("/", "\\")) or os.path.isabs(value):
        raise UnsafeNameError(f"account id {shown} is an absolute path")
    if ".." in value or "/" in value or "\\" in value:
        raise UnsafeNameError(f"account id {shown} contains a path separator or '..'")
    if not _ACCOUNT_ID.match(value):
        raise UnsafeNameError(f"account id {shown} must match ^[A-Za-z0-9_-]{{1,64}}$")
    return value


def parse_month(value: object) -> Period:
    """`YYYY-MM` -> the UTC month `[first day, first day of next)`."""
    if not isinstance(value, str) or "\x00" in value:
        raise UnsafeNameError(f"month must be a YYYY-MM string, got {value!r:.80}")
    match = _MONTH.match(value)
    if not match or not 1 <= int(match.group(2)) <= 12 or not 1900 <= int(match.group(1)) <= 9998:
        raise UnsafeNameError(
            f"month {value[:80]!r} must be YYYY-MM with ASCII digits, from 1900-01 to 9998-12 "
            "(e.g. 2025-06)"
        )
    year, month = int(match.group(1)), int(match.group(2))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    previous = datetime(year - (month == 1), 12 if month == 1 else month - 1, 1, tzinfo=UTC)
    return Period(f"{year:04d}-{month:02d}", start, end, previous)


def version_number(name: str) -> int | None:
    match = _VERSION_DIR.match(name)
    return int(match.group(1)) if match else None


def ensure_dir(path: Path) -> Path:
    """Create `path` (and missing parents) with mode 0o750; an existing one is left as it is."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(directory, DIR_MODE)
    if not path.is_dir():
        raise StatementError(f"{path} exists and is not a directory")
    return path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(
    path: Path, content: bytes | Callable[[BinaryIO], T], mode: int = FILE_MODE
) -> T | None:
    """Write `path` all or nothing: a crash leaves the old file or the new one, never a mix.

    `content` is the bytes, or a function writing to the open binary file (its result is
    returned).
    """
    result = None
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed or widened the mode
        with os.fdopen(fd, "wb") as handle:
            if isinstance(content, bytes):
                handle.write(content)
            else:
                result = content(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return result
