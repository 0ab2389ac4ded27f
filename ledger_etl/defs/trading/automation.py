"""The polling schedule (TRADING_POLL_CRON, default every 5 minutes) and the alert sensor."""

from __future__ import annotations

import json

import dagster as dg

from ledger_etl.defs.history.partitions import ACCOUNTS
from ledger_etl.settings import export_dir, trading_poll_cron
from ledger_etl.trading.alerts import ALERTS_FILE

trading_poll_job = dg.define_asset_job(
    "trading_poll_job",
    selection=[
        "instruments",
        "positions_snapshot",
        "working_orders_snapshot",
        "order_lifecycle",
        "exposure_snapshot",
    ],
)
trading_exposure_job = dg.define_asset_job("trading_exposure_job", selection=["exposure_snapshot"])


@dg.schedule(
    job=trading_poll_job,
    cron_schedule=trading_poll_cron(),
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def trading_poll_schedule(context: dg.ScheduleEvaluationContext):
    """Poll every registered account."""
    accounts = context.instance.get_dynamic_partitions(ACCOUNTS.name)
    if not accounts:
        return dg.SkipReason("no accounts registered yet (the discovery sensor adds them)")
    stamp = context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
    return [dg.RunRequest(run_key=f"trading-{a}-{stamp}", partition_key=a) for a in accounts]


@dg.sensor(
    job=trading_exposure_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def trading_alert_sensor(context: dg.SensorEvaluationContext):
    """New lines of `_audit/alerts.jsonl` become warnings in the log (the notification) and a
    run of the account's exposure report; the cursor is the number of lines handled."""
    path = export_dir() / ALERTS_FILE
    if not path.exists():
        return dg.SkipReason(f"no alerts yet ({path})")
    lines = path.read_text(encoding="utf-8").splitlines()
    done = int(context.cursor or 0)
    fresh = lines[done:]
    if not fresh:
        return dg.SkipReason("no new alerts")
    accounts: set[str] = set()
    for line in fresh:
        try:
            alert = json.loads(line)
        except json.JSONDecodeError:
            context.log.warning(f"unreadable alert line skipped: {line[:80]!r}")
            continue
        context.log.warning(
            f"trading alert {alert.get('account_id')} {alert.get('rule')} "
            f"{alert.get('deal_id') or ''}: {alert.get('detail')}"
        )
        accounts.add(str(alert.get("account_id")))
    context.update_cursor(str(len(lines)))
    known = set(context.instance.get_dynamic_partitions(ACCOUNTS.name))
    return [
        dg.RunRequest(run_key=f"alerts-{a}-{len(lines)}", partition_key=a)
        for a in sorted(accounts & known)
    ]
