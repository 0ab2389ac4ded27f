"""`price_bars`: MINUTE bars of one UTC day of one epic, backfilled over REST (idempotent)."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from ledger_etl.defs.resources import CapitalApiResource, LedgerResource
from ledger_etl.intervals import Window
from ledger_etl.market.backfill import backfill

MARKET_START = "2025-01-01"
EPICS = dg.DynamicPartitionsDefinition(name="market_epics")
DAYS = dg.DailyPartitionsDefinition(start_date=MARKET_START)
DAY_EPIC = dg.MultiPartitionsDefinition({"day": DAYS, "epic": EPICS})
RESOLUTION = "MINUTE"


def day_epics(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
) -> list[tuple[str, str]]:
    """(day, epic) of every partition of this run."""
    if context.has_partition_key_range:
        keys = list(context.partition_keys)
    elif context.has_partition_key:
        keys = [context.partition_key]
    else:
        return []
    pairs = []
    for key in keys:
        dims = DAY_EPIC.get_partition_key_from_str(str(key)).keys_by_dimension
        pairs.append((dims["day"], dims["epic"]))
    return sorted(pairs)


def day_window(day: str) -> Window:
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return Window(start, start + timedelta(days=1))


@dg.asset(
    partitions_def=DAY_EPIC,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=31),
    group_name="market",
    kinds={"api", "sql"},
)
def price_bars(
    context: dg.AssetExecutionContext, capital: CapitalApiResource, ledger: LedgerResource
) -> dg.MaterializeResult:
    """MINUTE bars (bid and ask, volume) of the day; only the store's gaps are asked for, so a
    re-run asks for nothing. Bars of the current day are fetched up to the last closed one."""
    engine = ledger.engine()
    totals = {"requests": 0, "bars": 0, "changed": 0}
    with capital.open_client(context.log, ledger=engine) as client:
        for day, epic in day_epics(context):
            report = backfill(client, engine, epic, RESOLUTION, day_window(day))
            totals["requests"] += report.requests
            totals["bars"] += report.bars
            totals["changed"] += report.changed
    return dg.MaterializeResult(metadata=totals)
