"""Checks: exposure_within_limits, orders_follow_policy, lifecycle_ties_out."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from ledger_etl.defs.resources import LedgerResource
from ledger_etl.logins import split_account_key
from ledger_etl.settings import trading_policy_path
from ledger_etl.trading.governance import govern
from ledger_etl.trading.policy import load_policy
from ledger_etl.trading.ties import ties_out

# Limits on aggregates (notional per epic, class, account; leverage) vs rules on each deal.
AGGREGATE_RULES = ("max_notional", "max_leverage")
LEDGER_SETTLE = timedelta(days=1)  # the ledger is synced daily; younger closes are not checked


def _breaches(context, ledger: LedgerResource):
    path = trading_policy_path()
    if path is None:
        return None
    result = govern(
        ledger.engine(),
        _only_account(context),
        load_policy(path),
        record=False,
    )
    return result.breaches


def _only_account(context) -> str:
    """The account id of the check's partition (a `<login>/<accountId>` key's id)."""
    if context.has_partition_key:
        key = context.partition_key
    else:
        key = (context.partition_keys if hasattr(context, "partition_keys") else [])[0]
    return split_account_key(key)[1]


@dg.asset_check(asset="exposure_snapshot", blocking=False)
def exposure_within_limits(context, ledger: LedgerResource) -> dg.AssetCheckResult:
    """No aggregate limit of the policy (TRADING_POLICY_FILE) is breached."""
    breaches = _breaches(context, ledger)
    if breaches is None:
        return dg.AssetCheckResult(passed=True, metadata={"policy": "none configured"})
    found = [b for b in breaches if b.rule.startswith(AGGREGATE_RULES)]
    return dg.AssetCheckResult(
        passed=not found,
        metadata={"breaches": len(found), "detail": "; ".join(b.detail for b in found[:20])},
    )


@dg.asset_check(asset="working_orders_snapshot", blocking=False)
def orders_follow_policy(context, ledger: LedgerResource) -> dg.AssetCheckResult:
    """Every deal follows the per-deal rules (stops, guaranteed stops, limits, stop distance)
    and none drifted from its first values."""
    breaches = _breaches(context, ledger)
    if breaches is None:
        return dg.AssetCheckResult(passed=True, metadata={"policy": "none configured"})
    found = [b for b in breaches if not b.rule.startswith(AGGREGATE_RULES)]
    return dg.AssetCheckResult(
        passed=not found,
        metadata={
            "breaches": len(found),
            "detail": "; ".join(f"{b.deal_id} {b.rule}: {b.detail}" for b in found[:20]),
        },
    )


@dg.asset_check(asset="order_lifecycle", blocking=False)
def lifecycle_ties_out(context, ledger: LedgerResource) -> dg.AssetCheckResult:
    """Every closed position's TRADE transactions sum to its realised P&L in the ledger."""
    account_id = _only_account(context)
    with ledger.engine().connect() as conn:
        checked, problems = ties_out(conn, account_id, datetime.now(UTC) - LEDGER_SETTLE)
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={
            "closed_positions_checked": checked,
            "problems": len(problems),
            "detail": "; ".join(f"{p['deal_id']}: {p['reason']}" for p in problems[:20]),
        },
    )


CHECKS = [exposure_within_limits, orders_follow_policy, lifecycle_ties_out]
