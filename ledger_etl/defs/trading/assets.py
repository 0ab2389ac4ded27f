"""Assets per account: the poll (instruments, positions_snapshot, working_orders_snapshot,
order_lifecycle) and exposure_snapshot. Thin: arguments in, domain calls, metadata out."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from ledger_etl.defs.history.partitions import ACCOUNTS
from ledger_etl.defs.resources import CapitalApiResource, LedgerResource
from ledger_etl.defs.scale import login_slot
from ledger_etl.ledger.db import upgrade
from ledger_etl.logins import split_account_key
from ledger_etl.settings import trading_mapping_path, trading_policy_path
from ledger_etl.trading.export import write_report
from ledger_etl.trading.governance import govern
from ledger_etl.trading.policy import load_policy
from ledger_etl.trading.poll import poll_account
from ledger_etl.trading.query import exposure_at, exposure_json

GROUP = "trading"
POLL_SPECS = [
    dg.AssetSpec(
        "instruments",
        group_name=GROUP,
        partitions_def=ACCOUNTS,
        description="The instrument master (CAPITAL:<epic>), versioned on change.",
    ),
    dg.AssetSpec(
        "positions_snapshot",
        group_name=GROUP,
        partitions_def=ACCOUNTS,
        description="Open positions, a row per content change (bitemporal).",
    ),
    dg.AssetSpec(
        "working_orders_snapshot",
        group_name=GROUP,
        partitions_def=ACCOUNTS,
        description="Working orders, a row per content change (bitemporal).",
    ),
    dg.AssetSpec(
        "order_lifecycle",
        group_name=GROUP,
        partitions_def=ACCOUNTS,
        description="Order and position state machines and the hash-chained log.",
    ),
]


class TradingConfig(dg.Config):
    """`policy_file` / `mapping_file` override TRADING_POLICY_FILE / TRADING_INSTRUMENT_MAP."""

    policy_file: str | None = None
    mapping_file: str | None = None


def _path(value: str | None, default: Path | None) -> Path | None:
    return Path(value).expanduser() if value else default


# The API pool is the login's (`login_slot`): `capital_api`, or `capital_api/<login>`.
@dg.multi_asset(specs=POLL_SPECS, can_subset=False)
def trading_poll(
    context: dg.AssetExecutionContext,
    config: TradingConfig,
    capital: CapitalApiResource,
    ledger: LedgerResource,
):
    """One poll of the account: one consistent instant for all four assets."""
    login, account_id = split_account_key(context.partition_key)
    engine = ledger.engine()
    upgrade(engine)
    mapping = _path(config.mapping_file, trading_mapping_path())
    with (
        login_slot(context, login),
        capital.open_client(context.log, ledger=engine, login=login) as client,
    ):
        result = poll_account(client, engine, account_id, mapping_file=mapping, migrate=False)
    if result.status != "complete":
        raise dg.Failure(f"poll of {account_id} failed: {result.error}")
    common = {"observed_at": result.observed_at.isoformat(), "flagged": len(result.problems)}
    yield dg.MaterializeResult(asset_key="instruments", metadata=common)
    yield dg.MaterializeResult(
        asset_key="positions_snapshot",
        metadata={
            **common,
            "positions": result.positions,
            "snapshot_rows": result.snapshot_rows,
            "rows_written": result.rows_written,
        },
    )
    yield dg.MaterializeResult(
        asset_key="working_orders_snapshot", metadata={**common, "orders": result.orders}
    )
    yield dg.MaterializeResult(
        asset_key="order_lifecycle", metadata={**common, "transitions": result.transitions}
    )


@dg.asset(group_name=GROUP, partitions_def=ACCOUNTS, deps=["positions_snapshot", "instruments"])
def exposure_snapshot(
    context: dg.AssetExecutionContext, config: TradingConfig, ledger: LedgerResource
) -> dg.MaterializeResult:
    """Exposure of the account at its latest poll; with a policy, breaches become alerts in
    `<export dir>/_audit/alerts.jsonl`. The report is written as JSON with its manifest."""
    account_id = split_account_key(context.partition_key)[1]
    engine = ledger.engine()
    policy_path = _path(config.policy_file, trading_policy_path())
    if policy_path is not None:
        outcome = govern(engine, account_id, load_policy(policy_path), export_dir=ledger.exports())
        exposure, fresh = outcome.exposure, outcome.new_alerts
    else:
        exposure, fresh = exposure_at(engine, account_id), []
    report = exposure_json(exposure)
    stamp = exposure.as_of.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = ledger.exports() / "trading" / account_id / f"exposure-{stamp}.json"
    write_report(report, out, "json")
    return dg.MaterializeResult(
        metadata={
            "as_of": report["as_of"],
            "currency": report["currency"],
            "positions": len(report["positions"]),
            "notional": report["totals"]["notional"],
            "margin": report["totals"]["margin"],
            "upl": report["totals"]["upl"],
            "breaches": len(report["breaches"]),
            "new_alerts": len(fresh),
            "report": dg.MetadataValue.path(str(out)),
            "evaluated_at": datetime.now(UTC).isoformat(),
        }
    )
