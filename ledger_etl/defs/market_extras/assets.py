"""`watchlists` and `client_sentiment`: snapshots on a schedule, not partitions.

Neither endpoint has history: what was not observed at the time cannot be fetched later. So
these assets are unpartitioned snapshot takers; each materialization is one observation at the
server's instant, and the ledger's poll tables are the coverage. The sentiment universe is the
run config's `epics`, or else every current watchlist member (the watchlists asset runs first).
"""

import dagster as dg

from ledger_etl.defs.history.assets import API_POOL
from ledger_etl.defs.resources import CapitalApiResource, LedgerResource
from ledger_etl.market.sentiment import poll_sentiment, sentiment_polls_since
from ledger_etl.market.watchlists import all_member_epics, poll_watchlists

GROUP = "market"
SENTIMENT_CRON = "*/15 * * * *"


class SentimentConfig(dg.Config):
    """`epics`: the markets to observe; empty means every current watchlist member."""

    epics: list[str] = []


@dg.asset(
    group_name=GROUP,
    pool=API_POOL,
    description="Every watchlist and its members, with membership history (valid_from/to).",
)
def watchlists(
    context: dg.AssetExecutionContext, capital: CapitalApiResource, ledger: LedgerResource
) -> dg.MaterializeResult:
    engine = ledger.engine()
    with capital.open_client(context.log, ledger=engine) as client:
        changes = poll_watchlists(client, engine)
    if changes.unreadable:
        context.log.warning(f"watchlists left as they were (unreadable): {changes.unreadable}")
    return dg.MaterializeResult(
        metadata={
            "observed_at": changes.observed_at.isoformat(),
            "watchlists": changes.watchlists,
            "added": dg.MetadataValue.json([list(a) for a in changes.added]),
            "removed": dg.MetadataValue.json([list(r) for r in changes.removed]),
            "deleted": dg.MetadataValue.json(changes.deleted),
            "unreadable": dg.MetadataValue.json(changes.unreadable),
            "stale": changes.stale,
            "ledger_run": changes.run_id,
        }
    )


@dg.asset(
    group_name=GROUP,
    pool=API_POOL,
    deps=[watchlists],
    description="Client sentiment per market: one observation per market per poll.",
)
def client_sentiment(
    context: dg.AssetExecutionContext,
    config: SentimentConfig,
    capital: CapitalApiResource,
    ledger: LedgerResource,
) -> dg.MaterializeResult:
    engine = ledger.engine()
    epics = list(config.epics) or all_member_epics(engine)
    if not epics:
        raise dg.Failure("no markets to observe: no watchlist has members and no epics are set")
    with capital.open_client(context.log, ledger=engine) as client:
        report = poll_sentiment(client, engine, epics)
    if report.unknown:
        context.log.warning(f"the broker knows no market {report.unknown}; the rest recorded")
    return dg.MaterializeResult(
        metadata={
            "observed_at": report.observed_at.isoformat(),
            "markets": report.asked,
            "new_rows": report.write.inserted,
            "unchanged": report.write.unchanged,
            "revised": report.write.revised,
            "unknown": dg.MetadataValue.json(report.unknown),
            "unusable_rows": report.problems,
            "ledger_run": report.run_id,
        }
    )


@dg.asset_check(asset=client_sentiment, description="The last poll observed every market.")
def sentiment_poll_complete(ledger: LedgerResource) -> dg.AssetCheckResult:
    polls = sentiment_polls_since(ledger.engine(), None, limit=1)
    if not polls:
        return dg.AssetCheckResult(passed=False, metadata={"reason": "no poll recorded yet"})
    last = polls[0]
    missing = last.asked - last.observed
    return dg.AssetCheckResult(
        passed=missing == 0,
        metadata={
            "observed_at": last.observed_at.isoformat(),
            "asked": last.asked,
            "observed": last.observed,
            "unknown": dg.MetadataValue.json(last.unknown),
        },
    )


market_extras_job = dg.define_asset_job(
    "market_snapshots",
    selection=[watchlists, client_sentiment],
    description="Read the watchlists, then take a client-sentiment snapshot of their members.",
)


@dg.schedule(
    job=market_extras_job,
    cron_schedule=SENTIMENT_CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def client_sentiment_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Every 15 minutes: the watchlists, then the sentiment of their members."""
    scheduled = context.scheduled_execution_time
    key = scheduled.strftime("%Y-%m-%dT%H:%M") if scheduled else "manual"
    return dg.RunRequest(
        run_key=f"market-snapshots-{key}", tags={"ledger_etl/trigger": "sentiment"}
    )


MARKET_EXTRAS_ASSETS = [watchlists, client_sentiment]
MARKET_EXTRAS_CHECKS = [sentiment_poll_complete]
MARKET_EXTRAS_JOBS = [market_extras_job]
MARKET_EXTRAS_SCHEDULES = [client_sentiment_schedule]
