"""The read audit: one row per request the service answers, and alerts for refused files.

A row says who (the user, or none when authentication failed), what (method, path and query,
the account), when, the sha256 of the bytes served and the client address. Headers are never
recorded, so a token cannot reach the table. A published file refused because its bytes no
longer match its manifest is also appended to `<export dir>/_audit/alerts.jsonl`.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select

from ledger_etl.ledger import schema as s

ALERTS_DIR = "_audit"
ALERTS_FILE = "alerts.jsonl"
MAX_PATH = 2000


@dataclass(frozen=True)
class ReadRecord:
    user_name: str | None
    client: str
    method: str
    path: str
    status: int
    outcome: str
    account_id: str | None = None
    sha256: str | None = None
    detail: str | None = None


def audit_row(record: ReadRecord, at: datetime | None = None) -> dict[str, Any]:
    """The `read_audit` row of a read (values cut to their columns' sizes)."""
    return {
        "at": at or datetime.now(UTC),
        "user_name": record.user_name,
        "client": record.client[:64],
        "method": record.method[:8],
        "path": record.path[:MAX_PATH],
        "account_id": record.account_id[:64] if record.account_id else None,
        "status": record.status,
        "outcome": record.outcome[:32],
        "sha256": record.sha256,
        "detail": _printable(record.detail[:2000]) if record.detail else None,
    }


def record_read(engine: Engine, record: ReadRecord, at: datetime | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(insert(s.read_audit).values(**audit_row(record, at)))


class AuditWriter:
    """Audit rows written by one thread, as many to a transaction as are waiting.

    A row per request, each in its own transaction from its own thread, makes every request
    queue for the database's write lock (on SQLite one writer at a time, the others sleeping in
    its busy handler): under many concurrent readers that queue is most of a request's time.
    Here a request hands its row over and waits until the transaction holding it commits;
    rows that arrive meanwhile go together into the next one. The thread stops when idle and
    starts again with the next row. A batch that fails is written again row by row, so a bad
    row fails its own request alone.
    """

    def __init__(self, engine: Engine, max_batch: int = 500, idle_seconds: float = 5.0) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.idle_seconds = idle_seconds
        self._queue: queue.SimpleQueue[tuple[dict[str, Any], Future[None]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, record: ReadRecord, at: datetime | None = None) -> Future[None]:
        """Queue the row; the future is done once it is committed (or has failed)."""
        done: Future[None] = Future()
        with self._lock:
            self._queue.put((audit_row(record, at), done))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="read-audit", daemon=True)
                self._thread.start()
        return done

    def _run(self) -> None:
        while True:
            try:
                batch = [self._queue.get(timeout=self.idle_seconds)]
            except queue.Empty:
                with self._lock:  # a row queued from now on starts a new thread
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[tuple[dict[str, Any], Future[None]]]) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(s.read_audit), [row for row, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            for item in batch:
                self._write([item])
            return
        for _, done in batch:
            done.set_result(None)


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else f"%{ord(c):02X}" for c in text)


def list_reads(
    engine: Engine,
    *,
    user: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Newest first; `before_id` pages on."""
    a = s.read_audit
    query = select(a).order_by(a.c.id.desc()).limit(limit)
    if user is not None:
        query = query.where(a.c.user_name == user)
    if since is not None:
        query = query.where(a.c.at >= since)
    if before_id is not None:
        query = query.where(a.c.id < before_id)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        {
            "id": r.id,
            "at": r.at.isoformat().replace("+00:00", "Z"),
            "user": r.user_name,
            "client": r.client,
            "method": r.method,
            "path": r.path,
            "account_id": r.account_id,
            "status": r.status,
            "outcome": r.outcome,
            "sha256": r.sha256,
            "detail": r.detail,
        }
        for r in rows
    ]


def append_alert(export_root: Path, alert: dict[str, Any]) -> Path:
    """Append one JSON line to `_audit/alerts.jsonl` (created 0750/0640), fsynced: an alert
    must survive the crash that may follow it."""
    folder = export_root / ALERTS_DIR
    folder.mkdir(mode=0o750, parents=True, exist_ok=True)
    path = folder / ALERTS_FILE
    line = json.dumps({"at": datetime.now(UTC).isoformat(), **alert}, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o640)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return path
