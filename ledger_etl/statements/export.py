"""Publish a monthly statement: `<out>/<account>/<YYYY-MM>/v<N>/` with the statement files,
`manifest.json` (hashes, sizes, row counts, content hash, ledger state, code version, run id)
and `audit.jsonl` (window fetches used, processing steps, assertions checked).

A version folder is assembled under a hidden name and renamed into place once complete, so a
reader never sees half a version; its files are then read-only. Publishing content that equals
the current version writes no version, but still rewrites `versions.json` when it does not state
what the folders do (a crash or a full disk between the rename and the index write). When the
newest version is damaged (see `versions.py`) the next publish writes a new version beside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Literal

from sqlalchemy import Engine

from ledger_etl import __version__
from ledger_etl.errors import InputError
from ledger_etl.ledger.chart import ChartOfAccounts
from ledger_etl.ledger.faultpoints import checkpoint
from ledger_etl.runs import new_run_id
from ledger_etl.statements.build import build_statement
from ledger_etl.statements.document import diff_doc, fetch_doc, gap_doc, iso, money
from ledger_etl.statements.document import statement_content_hash as content_hash_of
from ledger_etl.statements.layout import (
    AUDIT_FILE,
    CENT,
    FILE_NAMES,
    MANIFEST_FILE,
    VERSIONS_FILE,
    month_lock,
    sha256_file,
)
from ledger_etl.statements.model import Period, Statement
from ledger_etl.statements.paths import (
    READ_ONLY_MODE,
    StatementError,
    atomic_write,
    ensure_dir,
    ensure_tree_dir,
    fsync_dir,
    parse_month,
    validate_account_id,
)
from ledger_etl.statements.query import read_statement_inputs
from ledger_etl.statements.verify import verify_version
from ledger_etl.statements.versions import (
    PublishedVersion,
    compute_diff,
    next_version_number,
    scan_versions,
    write_versions_index,
)
from ledger_etl.statements.writers_csv import write_csv
from ledger_etl.statements.writers_json import write_json
from ledger_etl.statements.writers_parquet import write_parquet
from ledger_etl.statements.writers_pdf import write_pdf
from ledger_etl.statements.writers_xlsx import write_xlsx

ALL_FORMATS = ("csv", "xlsx", "json", "parquet", "pdf")
WRITERS: dict[str, Callable[[Statement, BinaryIO], dict[str, object]]] = {
    "csv": write_csv,
    "xlsx": write_xlsx,
    "json": write_json,
    "parquet": write_parquet,
    "pdf": write_pdf,
}


class IndexNotWrittenError(StatementError):
    """A version is published (or unchanged), but `versions.json` could not be rewritten."""


@dataclass(frozen=True)
class PublishRun:
    """The run a version is published by: a ledger-format run id, and the Dagster run's own id
    when Dagster published it."""

    run_id: str
    dagster_run_id: str | None = None


@dataclass(frozen=True)
class PublishResult:
    status: Literal["written", "unchanged"]
    folder: Path
    version: int
    statement: Statement
    # versions found damaged by this publish (number, problems): kept, never the current one
    damaged: tuple[tuple[int, tuple[str, ...]], ...] = ()
    index_rewritten: bool = False  # versions.json did not state what the folders do


@dataclass
class BuildLog:
    """The processing log of one publish: one record per step, with UTC timestamps."""

    steps: list[dict[str, Any]] = field(default_factory=list)

    @contextlib.contextmanager
    def step(self, name: str, **detail: Any) -> Iterator[dict[str, Any]]:
        record: dict[str, Any] = {"kind": "step", "step": name, "started_at": _now(), **detail}
        began = time.perf_counter()
        try:
            yield record
        finally:
            record["finished_at"] = _now()
            record["seconds"] = round(time.perf_counter() - began, 6)
            self.steps.append(record)


def _now() -> str:
    return iso(datetime.now(UTC)) or ""


def normalize_formats(formats: Iterable[str] | str) -> tuple[str, ...]:
    """The formats to write, in a fixed order; JSON is always included (diffs are made from it)."""
    wanted = {
        f.strip().lower() for f in (formats.split(",") if isinstance(formats, str) else formats)
    }
    wanted.discard("")
    unknown = sorted(wanted - set(ALL_FORMATS))
    if unknown:
        raise StatementError(f"unknown format(s) {', '.join(unknown)}; use {','.join(ALL_FORMATS)}")
    wanted.add("json")
    return tuple(f for f in ALL_FORMATS if f in wanted)


def publish_statement(
    engine: Engine,
    account_id: str,
    month: str,
    out_dir: Path | str | None = None,
    run_id: str | None = None,
    formats: Iterable[str] | str = ALL_FORMATS,
    *,
    chart: ChartOfAccounts | None = None,
    now: datetime | None = None,
    provisional: bool = False,
    dagster_run_id: str | None = None,
) -> PublishResult:
    """Build the account's statement for `month` (YYYY-MM) and publish it as a new version,
    unless it equals the current one.

    A month that has not started is refused; the current month (not closed at `now`, default
    the clock) only with `provisional`, and it is then always PROVISIONAL, "month not closed".
    """
    account_id = validate_account_id(account_id)
    period = parse_month(month)
    chosen = normalize_formats(formats)
    closed = month_closed(period, now or datetime.now(UTC), provisional)
    if out_dir is None:
        from ledger_etl.settings import export_dir

        out_dir = export_dir()
    log = BuildLog()
    with log.step("read_ledger", account_id=account_id, month=period.label) as record:
        inputs = read_statement_inputs(engine, account_id, period, chart)
        previous = previous_final_closing(Path(out_dir), account_id, period.previous_start)
        inputs = replace(inputs, month_closed=closed, previous_final_closing=previous)
        record["entries"] = len(inputs.entries)
        record["activities"] = len(inputs.activities)
        record["fetches"] = len(inputs.fetches)
    with log.step("build_statement") as record:
        statement = build_statement(inputs)
        record["status"] = statement.status
        record["reconciliation"] = statement.reconciliation.status
    return publish_built(statement, Path(out_dir), run_id, chosen, log, dagster_run_id)


class MonthNotClosedError(StatementError, InputError):
    """A statement asked for a month that has not started, or has not ended without
    `--provisional`."""


def month_closed(period: Period, now: datetime, provisional: bool) -> bool:
    """Whether the month has ended at `now`; refuses a month that has not started, and an open
    month unless `provisional`."""
    if period.start > now:
        raise MonthNotClosedError(
            f"{period.label} has not started yet (now is {now:%Y-%m-%d %H:%M} UTC): there is "
            "nothing to state"
        )
    if period.end > now and not provisional:
        raise MonthNotClosedError(
            f"{period.label} is not closed until {period.end:%Y-%m-%d} 00:00 UTC; pass "
            "--provisional to publish it now as PROVISIONAL"
        )
    return period.end <= now


def previous_final_closing(
    out_dir: Path, account_id: str, previous_start: datetime
) -> Decimal | None:
    """The closing balance of the previous month's published statement, if that one is FINAL."""
    from ledger_etl.statements.published import PublishedStatements

    reader = PublishedStatements(out_dir)
    label = f"{previous_start:%Y-%m}"
    latest = reader.latest(account_id, label)
    if latest is None or latest.statement_status != "FINAL":
        return None
    return Decimal(reader.document(account_id, label, latest.version)["closing_balance"])


def publish_built(
    statement: Statement,
    out_dir: Path,
    run_id: str | None = None,
    formats: Sequence[str] = ALL_FORMATS,
    log: BuildLog | None = None,
    dagster_run_id: str | None = None,
) -> PublishResult:
    """Publish an already built statement (see `publish_statement`). `run_id` defaults to a new
    one in the ledger's run-id format; a Dagster run id is recorded beside it."""
    log = log or BuildLog()
    run = PublishRun(run_id or new_run_id(), dagster_run_id)
    formats = normalize_formats(formats)
    account_id = validate_account_id(statement.account_id)
    label = parse_month(statement.period.label).label
    failed = [c for c in statement.checks if not c.ok]
    if failed:
        raise StatementError(
            f"{account_id} {label}: statement check failed: {failed[0].name} ({failed[0].detail})"
        )
    with log.step("content_hash") as record:
        content_hash = content_hash_of(statement)
        record["content_hash"] = content_hash
    month_dir = ensure_tree_dir(out_dir, account_id, label)
    with month_lock(month_dir):
        versions = scan_versions(month_dir)
        found: dict[int, list[str]] = {}
        base = _trusted_base(versions, found)
        newest = versions[-1] if versions else None
        damaged = tuple(
            (v.version, tuple(found.get(v.version) or v.damage))
            for v in versions
            if (v.version in found or v.damaged) and not v.recorded
        )
        if newest is not None and newest is base and base.content_hash == content_hash:
            healed = _index(month_dir, account_id, label, found, f"v{base.version} is unchanged")
            return PublishResult("unchanged", base.folder, base.version, statement, damaged, healed)
        number = next_version_number(month_dir)
        with log.step("diff", previous_version=base.version if base else None):
            diff = compute_diff(base, statement) if base is not None else None
        statement = replace(statement, version=number, diff=diff)
        folder = month_dir / f"v{number}"
        staging = month_dir / f".v{number}.{uuid.uuid4().hex[:12]}.partial"
        ensure_dir(staging)
        try:
            _write_version(statement, staging, content_hash, run, formats, log)
            os.rename(staging, folder)  # fails rather than replace an existing folder
            fsync_dir(month_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        checkpoint("after_version_rename")
        _index(month_dir, account_id, label, found, f"v{number} is published in {folder}")
    return PublishResult("written", folder, number, statement, damaged)


def _trusted_base(
    versions: list[PublishedVersion], found: dict[int, list[str]]
) -> PublishedVersion | None:
    """The newest version that verifies in full (the diff's base, and "unchanged" only when it
    is the newest of all); versions found damaged on the way are added to `found`."""
    for version in reversed(versions):
        if version.damaged:
            continue
        problems = verify_version(version.folder)
        if not problems:
            return version
        found[version.version] = problems
    return None


def _index(
    month_dir: Path, account_id: str, label: str, found: dict[int, list[str]], done: str
) -> bool:
    """Rewrite `versions.json` when it differs from the folders (returns whether it did); a
    failure here must not read as "nothing was published"."""
    try:
        return write_versions_index(month_dir, account_id, label, found)
    except OSError as exc:
        raise IndexNotWrittenError(
            f"{account_id} {label}: {done}, but {month_dir / VERSIONS_FILE} could not be "
            f"written ({exc.strerror or exc}); the next publish or `ledger-etl verify --repair "
            f"{month_dir}` rewrites it"
        ) from None


def _write_version(
    statement: Statement,
    staging: Path,
    content_hash: str,
    run: PublishRun,
    formats: Sequence[str],
    log: BuildLog,
) -> None:
    written: dict[str, dict[str, object]] = {}
    for fmt in formats:
        with log.step(f"write_{fmt}", file=FILE_NAMES[fmt]) as record:
            writer = WRITERS[fmt]
            result = atomic_write(staging / FILE_NAMES[fmt], lambda h, w=writer: w(statement, h))
            written[fmt] = result or {}
            record["rows"] = written[fmt].get("rows")
    assertions = [
        {"kind": "assertion", "name": c.name, "ok": c.ok, "detail": c.detail}
        for c in statement.checks
    ] + format_assertions(statement, written)
    bad = [a for a in assertions if not a["ok"]]
    if bad:
        raise StatementError(f"format check failed: {bad[0]['name']} ({bad[0]['detail']})")
    generated_at = _now()
    audit_lines = _audit_lines(statement, run, generated_at, log, assertions)
    atomic_write(staging / AUDIT_FILE, "".join(audit_lines).encode())
    files = {}
    for name in sorted(p.name for p in staging.iterdir() if not p.name.startswith(".")):
        files[name] = {
            "sha256": sha256_file(staging / name),
            "bytes": (staging / name).stat().st_size,
        }
    manifest = _manifest(statement, content_hash, run, generated_at, files, written)
    atomic_write(staging / MANIFEST_FILE, (json.dumps(manifest, indent=2) + "\n").encode())
    for path in staging.iterdir():
        os.chmod(path, READ_ONLY_MODE)
    fsync_dir(staging)


def format_assertions(
    statement: Statement, written: dict[str, dict[str, object]]
) -> list[dict[str, Any]]:
    """Each format's rows, amount sum and closing balance equal the model's (xlsx to the cent)."""
    out = []
    rows = len(statement.lines)
    for fmt, totals in written.items():
        exact = fmt != "xlsx"
        for key, expected in (
            ("amount_sum", statement.movement),
            ("closing_balance", statement.closing_balance),
        ):
            got = Decimal(str(totals.get(key)))
            ok = got == expected if exact else abs(got - expected) <= CENT
            out.append(
                {
                    "kind": "assertion",
                    "name": f"{fmt}_{key}_equals_model",
                    "ok": ok,
                    "detail": f"{fmt} {key} {got} {'==' if exact else '~='} {expected}",
                }
            )
        out.append(
            {
                "kind": "assertion",
                "name": f"{fmt}_rows_equal_model",
                "ok": totals.get("rows") == rows,
                "detail": f"{fmt} rows {totals.get('rows')} == {rows}",
            }
        )
    return out


def _audit_lines(
    statement: Statement,
    run: PublishRun,
    generated_at: str,
    log: BuildLog,
    assertions: list[dict[str, Any]],
) -> list[str]:
    def line(record: dict[str, Any]) -> str:
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"

    out = [
        line(
            {
                "kind": "statement",
                "account_id": statement.account_id,
                "month": statement.period.label,
                "version": statement.version,
                "status": statement.status,
                "run_id": run.run_id,
                "dagster_run_id": run.dagster_run_id,
                "code_version": __version__,
                "generated_at": generated_at,
            }
        )
    ]
    out += [
        line({"kind": "fetch", **fetch_doc(f, with_ids=True)}) for f in statement.coverage.fetches
    ]
    out += [line({"kind": "gap", **gap_doc(g)}) for g in statement.coverage.gaps]
    out += [line(step) for step in log.steps]
    out += [line(a) for a in assertions]
    return out


def _manifest(
    statement: Statement,
    content_hash: str,
    run: PublishRun,
    generated_at: str,
    files: dict[str, dict[str, Any]],
    written: dict[str, dict[str, object]],
) -> dict[str, Any]:
    s = statement
    return {
        "manifest_version": 1,
        "account_id": s.account_id,
        "month": s.period.label,
        "version": s.version,
        "status": s.status,
        "content_hash": content_hash,
        "generated_at": generated_at,
        "run_id": run.run_id,
        "dagster_run_id": run.dagster_run_id,
        "code_version": __version__,
        "ledger_state": {
            "entry_count": s.ledger_state.entry_count,
            "rows_digest": s.ledger_state.rows_digest,
            "max_last_run_id": s.ledger_state.max_last_run_id,
        },
        "files": files,
        "row_counts": {
            "entries": len(s.lines),
            "activity": len(s.activity),
            "fetches": len(s.coverage.fetches),
            "gaps": len(s.coverage.gaps),
            **{FILE_NAMES[fmt]: totals.get("rows") for fmt, totals in written.items()},
        },
        "totals": {
            "opening_balance": money(s.opening_balance),
            "closing_balance": money(s.closing_balance),
            "movement": money(s.movement),
        },
        "format_totals": written,
        "reconciliation": {
            "status": s.reconciliation.status,
            "difference": money(s.reconciliation.difference),
        },
        "diff": diff_doc(s.diff),
    }
