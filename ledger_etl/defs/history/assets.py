"""Assets per (month, account): raw transactions, raw activity, ledger entries, statement.

Each asset turns its partitions into arguments, calls domain code and reports what a person
needs in the UI. A run may carry several partitions (see `partitions.BACKFILL`).
"""

import warnings
from typing import Any

import dagster as dg

from ledger_etl.capital.errors import CapitalError
from ledger_etl.defs.history.partitions import (
    BACKFILL,
    MONTH_ACCOUNT,
    month_accounts,
    month_login_accounts,
)
from ledger_etl.defs.resources import CapitalApiResource, LedgerResource
from ledger_etl.defs.scale import API_POOL as API_POOL  # the single login's pool, re-exported
from ledger_etl.defs.scale import login_slot
from ledger_etl.errors import InputError
from ledger_etl.ledger.chart import load_chart
from ledger_etl.ledger.ingest import start_run
from ledger_etl.ledger.rebuild import renormalize
from ledger_etl.monthly import month_bounds, sync_month, sync_reconciliation_tail
from ledger_etl.statements.document import statement_content_hash
from ledger_etl.statements.export import publish_statement
from ledger_etl.sync import SyncReport

# Backfill policies are a deliberate choice here (batched backfill runs); Dagster labels the
# parameter beta, which is noise in the code location's load output.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

# The broker balance is observed at sync time; rolling it back to a month's end needs every
# transaction in between. `raw_transactions` fetches that tail (the part not stored yet) after
# the month itself, and says so in its metadata, so the statement asset makes no API call.
TAIL_ENDPOINT = "transactions"


class SyncConfig(dg.Config):
    """`refetch_days`: fetch only stored gaps plus the last N days (the daily incremental sync);
    unset, the whole month is fetched again."""

    refetch_days: int | None = None


def _fetch_metadata(reports: list[tuple[str, str, SyncReport]], endpoint: str) -> dict[str, Any]:
    rows = windows = failed = splits = retries = relogins = quarantined = flagged = inserted = 0
    removed = 0
    gaps: list[str] = []
    for month, account, report in reports:
        for entry in report.accounts:
            summary = entry.endpoints.get(endpoint)
            if summary is None:
                continue
            rows += summary.rows
            inserted += summary.inserted
            windows += summary.windows
            failed += summary.failed_windows
            splits += summary.split_windows
            retries += summary.retries
            relogins += summary.relogins
            quarantined += summary.quarantined
            removed += summary.removed
            flagged += summary.flagged
            gaps += [
                f"{account} {month}: [{g.start.isoformat()}, {g.end.isoformat()})"
                for g in summary.gaps
            ]
    return {
        "partitions": len(reports), "rows": rows, "new_rows": inserted, "windows": windows,
        "failed_windows": failed, "splits": splits, "retries": retries, "relogins": relogins,
        "quarantined": quarantined, "removed": removed, "flagged": flagged,
        "gaps": dg.MetadataValue.json(gaps),
        "ledger_runs": dg.MetadataValue.json([r.run_id for _, _, r in reports]),
    }  # fmt: skip


def _tail_metadata(tails: list[tuple[str, str, SyncReport | None]]) -> dict[str, Any]:
    """What the reconciliation tail fetched, per partition (None: the month has not ended)."""
    by_partition: dict[str, Any] = {}
    for month, account, report in tails:
        key = f"{account}|{month}"
        summary = report.accounts[0].endpoints.get(TAIL_ENDPOINT) if report else None
        if report is None or summary is None:
            by_partition[key] = None
            continue
        by_partition[key] = {
            "from": report.start.isoformat(), "to": report.end.isoformat(),
            "rows": summary.rows, "new_rows": summary.inserted,
            "windows": summary.windows, "failed_windows": summary.failed_windows,
        }  # fmt: skip
    values = [v for v in by_partition.values() if v]
    return {
        "tail_rows": sum(v["rows"] for v in values),
        "tail_failed_windows": sum(v["failed_windows"] for v in values),
        "tail": dg.MetadataValue.json(by_partition),
    }


def _sync(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    capital: CapitalApiResource,
    ledger: LedgerResource,
    endpoint: str,
) -> dg.MaterializeResult:
    reports: list[tuple[str, str, SyncReport]] = []
    tails: list[tuple[str, str, SyncReport | None]] = []
    run_params = {"dagster_run_id": context.run.run_id}
    by_login: dict[str | None, list[tuple[str, str]]] = {}
    for month, login, account in month_login_accounts(context):
        by_login.setdefault(login, []).append((month, account))
    failed: list[str] = []
    # Each login: its own pool slot, its own client (and so its own session and pacing). A
    # login that fails (refused credentials, say) does not stop the others in the same run.
    for login, pairs in by_login.items():
        try:
            with (
                login_slot(context, login),
                capital.open_client(context.log, ledger.engine(), login=login) as client,
            ):
                for month, account in pairs:
                    who = account if login is None else f"{login}/{account}"
                    context.log.info(f"fetching {endpoint} of {who} for {month}")
                    report = sync_month(
                        client,
                        ledger.engine(),
                        account,
                        month,
                        [endpoint],
                        refetch_days=config.refetch_days,
                        run_params=run_params,
                    )
                    reports.append((month, account, report))
                    if endpoint == TAIL_ENDPOINT:
                        tail = sync_reconciliation_tail(
                            client, ledger.engine(), account, month, run_params
                        )
                        tails.append((month, account, tail))
        except (CapitalError, InputError) as error:
            if login is None:
                raise
            message = f"login {login!r}: {error}"
            context.log.error(message)
            failed.append(message)
    if failed:
        raise dg.Failure(
            description=f"{len(failed)} login(s) failed; their partitions were not fetched: "
            + "; ".join(failed)
        )
    metadata = _fetch_metadata(reports, endpoint)
    if endpoint == TAIL_ENDPOINT:
        metadata.update(_tail_metadata(tails))
    if metadata["failed_windows"]:
        context.log.warning(
            f"{metadata['failed_windows']} window(s) failed; they are gaps "
            "and the coverage check will fail until they are fetched"
        )
    return dg.MaterializeResult(metadata=metadata)


def _raw_asset(endpoint: str, description: str) -> dg.AssetsDefinition:
    """The raw asset of one history endpoint: the two differ only in the endpoint."""

    @dg.asset(
        name=f"raw_{endpoint}",
        description=description,
        partitions_def=MONTH_ACCOUNT,
        backfill_policy=BACKFILL,
        group_name="capital",
        kinds={"api"},
    )
    def raw_asset(
        context: dg.AssetExecutionContext,
        config: SyncConfig,
        capital: CapitalApiResource,
        ledger: LedgerResource,
    ) -> dg.MaterializeResult:
        return _sync(context, config, capital, ledger, endpoint)

    return raw_asset


raw_transactions = _raw_asset(
    "transactions",
    "`/history/transactions` of the month, fetched in windows and stored as received; then the "
    "reconciliation tail: the transactions from the month's end to now that are not stored yet "
    "(metadata `tail`), so the statement can roll the broker's balance back to the month's end.",
)
raw_activity = _raw_asset(
    "activity",
    "`/history/activity` (detailed) of the month, fetched in windows and stored as received.",
)


@dg.asset(
    partitions_def=MONTH_ACCOUNT,
    backfill_policy=BACKFILL,
    deps=[raw_transactions, raw_activity],
    group_name="ledger",
    kinds={"sql"},
)
def ledger_entries(
    context: dg.AssetExecutionContext, ledger: LedgerResource
) -> dg.MaterializeResult:
    """The month's normalized ledger entries, re-derived from the raw rows (idempotent)."""
    engine = ledger.engine()
    chart = load_chart()
    run_id = start_run(engine, "normalize", {"dagster_run_id": context.run.run_id})
    per_partition = {}
    for month, account in month_accounts(context):
        start, end = month_bounds(month)
        result = renormalize(engine, run_id, account, start, end, chart)
        per_partition[f"{account}|{month}"] = {
            "entries": result.entries, "changed": result.changed,
            "quarantined": result.quarantined, "removed": result.removed, "total": result.total,
            "checksum": result.digest}  # fmt: skip
    values = list(per_partition.values())
    return dg.MaterializeResult(metadata={
        "entries": sum(v["entries"] for v in values),
        "changed": sum(v["changed"] for v in values),
        "quarantined": sum(v["quarantined"] for v in values),
        "checksum": values[0]["checksum"] if len(values) == 1 else "see by_partition",
        "by_partition": dg.MetadataValue.json(per_partition),
    })  # fmt: skip


@dg.asset(
    partitions_def=MONTH_ACCOUNT,
    backfill_policy=BACKFILL,
    deps=[ledger_entries],
    group_name="statements",
    kinds={"csv", "json", "parquet", "xlsx", "pdf"},
)
def monthly_statement(
    context: dg.AssetExecutionContext, ledger: LedgerResource
) -> dg.MaterializeResult:
    """The month's statement from the ledger alone (no API call), published as a new version
    only when its content changed."""
    engine = ledger.engine()
    results = {}
    for month, account in month_accounts(context):
        published = publish_statement(
            engine, account, month, ledger.exports(), dagster_run_id=context.run.run_id
        )
        statement = published.statement
        reconciliation = statement.reconciliation
        results[f"{account}|{month}"] = {
            "status": statement.status, "publish": published.status,
            "version": published.version, "folder": str(published.folder),
            "entries": len(statement.lines),
            "opening": str(statement.opening_balance),
            "closing": str(statement.closing_balance),
            "reconciliation": reconciliation.status,
            "difference": None if reconciliation.difference is None
            else str(reconciliation.difference),
            "reason": reconciliation.reason,
            "status_reasons": list(statement.status_reasons),
            "content_hash": statement_content_hash(statement),
        }  # fmt: skip
        line = (
            f"{account} {month}: {published.status} v{published.version} "
            f"({statement.status}, {reconciliation.status}) in {published.folder}"
        )
        if statement.status_reasons:
            context.log.warning(f"{line}; PROVISIONAL: {'; '.join(statement.status_reasons)}")
        else:
            context.log.info(line)
    values = list(results.values())
    metadata: dict[str, Any] = {"by_partition": dg.MetadataValue.json(results)}
    if len(values) == 1:
        only = values[0]
        metadata.update({
            "folder": dg.MetadataValue.path(only["folder"]), "version": only["version"],
            "status": only["status"], "publish": only["publish"],
            "reconciliation": only["reconciliation"], "entries": only["entries"],
            "status_reasons": dg.MetadataValue.json(only["status_reasons"]),
            "closing_balance": only["closing"], "content_hash": only["content_hash"],
        })  # fmt: skip
    return dg.MaterializeResult(metadata=metadata)
