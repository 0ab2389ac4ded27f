"""Jobs, schedules and sensors: the monthly close nobody watches, the daily incremental sync,
the weekly re-check of recently closed months, account discovery and failure alerts.

Close day and hour are read when the schedule is evaluated (`LEDGER_CLOSE_DAY`, default 2;
`LEDGER_CLOSE_HOUR`, default 6, UTC), so changing them needs no code change and nothing is read
when the code location loads. The close schedule therefore ticks hourly and acts only then.
"""

import json
import logging
from datetime import UTC, datetime

import dagster as dg

from ledger_etl.defs.history.assets import (
    ledger_entries,
    monthly_statement,
    raw_activity,
    raw_transactions,
)
from ledger_etl.defs.history.discovery import list_login_accounts
from ledger_etl.defs.history.partitions import ACCOUNTS, partition_key
from ledger_etl.defs.resources import CapitalApiResource, LedgerResource
from ledger_etl.defs.scale import account_login_tags, ensure_login_pool, login_tags
from ledger_etl.logins import split_account_key
from ledger_etl.monthly import month_key, months_closed_within, previous_month_key
from ledger_etl.settings import close_schedule

_log = logging.getLogger(__name__)

close_month_job = dg.define_asset_job(
    "close_month",
    selection=[raw_transactions, raw_activity, ledger_entries, monthly_statement],
    description="Fetch, normalize, check and publish the statement of a month and account.",
    tags=login_tags(),
)
sync_job = dg.define_asset_job(
    "sync_month",
    selection=[raw_transactions, raw_activity, ledger_entries],
    description="Fetch and normalize a month (no statement).",
    tags=login_tags(),
)


def _accounts(context: dg.ScheduleEvaluationContext | dg.SensorEvaluationContext) -> list[str]:
    return sorted(context.instance.get_dynamic_partitions(ACCOUNTS.name))


def _now(context: dg.ScheduleEvaluationContext) -> datetime:
    scheduled = context.scheduled_execution_time
    return scheduled.astimezone(UTC) if scheduled else datetime.now(UTC)


@dg.schedule(
    job=close_month_job,
    cron_schedule="0 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def monthly_close_schedule(
    context: dg.ScheduleEvaluationContext,
) -> list[dg.RunRequest] | dg.SkipReason:
    """On the close day and hour (default the 2nd, 06:00 UTC): the previous month, every
    registered account."""
    now = _now(context)
    close = close_schedule()
    day, hour = close.day, close.hour
    if (now.day, now.hour) != (day, hour):
        return dg.SkipReason(f"the monthly close runs on day {day} at {hour:02d}:00 UTC")
    accounts = _accounts(context)
    if not accounts:
        return dg.SkipReason("no accounts registered yet (see the account discovery sensor)")
    month = previous_month_key(now)
    return [
        dg.RunRequest(
            run_key=f"close-{month}-{account}",
            partition_key=partition_key(month, account),
            tags={"ledger_etl/trigger": "monthly_close", **account_login_tags(account)},
        )
        for account in accounts
    ]


@dg.schedule(
    job=sync_job,
    cron_schedule="30 5 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def daily_sync_schedule(
    context: dg.ScheduleEvaluationContext,
) -> list[dg.RunRequest] | dg.SkipReason:
    """Every day: the current month, fetching only gaps and the last two days again."""
    now = _now(context)
    accounts = _accounts(context)
    if not accounts:
        return dg.SkipReason("no accounts registered yet")
    month = month_key(now)
    config = {"refetch_days": 2}
    run_config = {
        "ops": {"raw_transactions": {"config": config}, "raw_activity": {"config": config}}
    }
    return [
        dg.RunRequest(
            run_key=f"daily-{now:%Y-%m-%d}-{account}",
            partition_key=partition_key(month, account),
            run_config=run_config,
            tags={"ledger_etl/trigger": "daily_sync", **account_login_tags(account)},
        )
        for account in accounts
    ]


@dg.schedule(
    job=close_month_job,
    cron_schedule="0 7 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def weekly_recheck_schedule(
    context: dg.ScheduleEvaluationContext,
) -> list[dg.RunRequest] | dg.SkipReason:
    """Every Monday: months closed within the last 35 days, fetched and published again (a
    late row makes a new statement version; an unchanged month writes nothing)."""
    now = _now(context)
    accounts = _accounts(context)
    months = months_closed_within(now, 35)
    if not accounts or not months:
        return dg.SkipReason("nothing closed within the last 35 days")
    return [
        dg.RunRequest(
            run_key=f"recheck-{now:%Y-%m-%d}-{month}-{account}",
            partition_key=partition_key(month, account),
            tags={"ledger_etl/trigger": "weekly_recheck", **account_login_tags(account)},
        )
        for month in months
        for account in accounts
    ]


def _unregistered_accounts(
    capital: CapitalApiResource,
    instance: dg.DagsterInstance,
    log: dg.DagsterLogManager | None = None,
) -> tuple[list[str], list[str]]:
    """(all account keys the API lists, those not yet registered as partitions). With a
    credentials file, every login's accounts as `<login>/<accountId>`; a login that fails (its
    credentials refused, its variables unset) is reported and the others are still listed."""
    found = list_login_accounts(capital, log)
    for login, error in found.failures.items():
        (log or _log).error(f"account discovery: login {login!r} failed: {error}")
    for login in {split_account_key(k)[0] for k in found.keys} - {None}:
        ensure_login_pool(instance, login)
    known = set(instance.get_dynamic_partitions(ACCOUNTS.name))
    return found.keys, [k for k in found.keys if k not in known]


def discover_accounts(
    capital: CapitalApiResource,
    instance: dg.DagsterInstance,
    log: dg.DagsterLogManager | None = None,
) -> tuple[list[str], list[str]]:
    """(all account ids, the newly registered ones) from the API."""
    ids, new = _unregistered_accounts(capital, instance, log)
    if new:
        instance.add_dynamic_partitions(ACCOUNTS.name, new)
    return ids, new


@dg.op
def register_accounts(context: dg.OpExecutionContext, capital: CapitalApiResource) -> None:
    ids, new = discover_accounts(capital, context.instance, context.log)
    context.log.info(f"{len(ids)} account(s); newly registered: {new or 'none'}")


@dg.job(description="Register the API's financial accounts as partitions.")
def discover_accounts_job() -> None:
    register_accounts()


@dg.sensor(minimum_interval_seconds=600, default_status=dg.DefaultSensorStatus.RUNNING)
def account_discovery_sensor(
    context: dg.SensorEvaluationContext, capital: CapitalApiResource
) -> dg.SensorResult | dg.SkipReason:
    """Every 10 minutes: accounts the API lists but the partitions lack are added."""
    ids, new = _unregistered_accounts(capital, context.instance, context.log)
    if not new:
        return dg.SkipReason(f"{len(ids)} account(s), none new")
    return dg.SensorResult(dynamic_partitions_requests=[ACCOUNTS.build_add_request(new)])


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING)
def run_failure_alert(context: dg.RunFailureSensorContext, ledger: LedgerResource) -> None:
    """A failed run leaves an alert line in `<export dir>/_audit/alerts.jsonl`."""
    folder = ledger.exports() / "_audit"
    folder.mkdir(parents=True, exist_ok=True)
    run = context.dagster_run
    line = {
        "at": datetime.now(UTC).isoformat(),
        "kind": "run_failure",
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": run.tags.get("dagster/partition"),
        "error": context.failure_event.message,
    }
    with (folder / "alerts.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")
