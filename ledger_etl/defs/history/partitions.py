"""Partitions: calendar month (UTC) x financial account.

Accounts are dynamic partitions, registered from the API by the discovery sensor (or the
`discover_accounts` job, or `ledger-etl demo`), so a new account needs no code change. With a
credentials file (several logins) an account key carries its login: `<login>/<accountId>`; with
one login it is the bare account id.
"""

from __future__ import annotations

import dagster as dg

from ledger_etl.logins import split_account_key
from ledger_etl.monthly import month_bounds

HISTORY_START = "2025-01"  # the first month offered for backfills
ACCOUNTS = dg.DynamicPartitionsDefinition(name="capital_accounts")
MONTHS = dg.MonthlyPartitionsDefinition(start_date=HISTORY_START, fmt="%Y-%m")
MONTH_ACCOUNT = dg.MultiPartitionsDefinition({"month": MONTHS, "account": ACCOUNTS})
# Batches of months per run: a backfill of a year is a handful of runs, not one per partition.
BACKFILL = dg.BackfillPolicy.multi_run(max_partitions_per_run=12)


def partition_key(month: str, account_id: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"month": month, "account": account_id})


def month_accounts(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
) -> list[tuple[str, str]]:
    """(month, account id) for every partition of this run, by account then month (the login
    of a `<login>/<accountId>` key dropped: the ledger knows accounts by their id)."""
    return [(month, account) for month, _, account in month_login_accounts(context)]


def month_login_accounts(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
) -> list[tuple[str, str | None, str]]:
    """(month, login or None, account id) for every partition of this run, by login, account,
    then month.

    Assets and checks both ask the context: a run over a range of this two-dimensional
    definition covers every account between the range's ends times every month between them,
    which only Dagster's own expansion gets right. A run with no partition has none.
    """
    if context.has_partition_key_range:
        keys = list(context.partition_keys)
    elif context.has_partition_key:
        keys = [context.partition_key]
    else:
        return []
    pairs: list[tuple[str, str | None, str]] = []
    for key in keys:
        dims = MONTH_ACCOUNT.get_partition_key_from_str(str(key)).keys_by_dimension
        month_bounds(dims["month"])  # validates the key
        login, account = split_account_key(dims["account"])
        pairs.append((dims["month"], login, account))
    return sorted(pairs, key=lambda p: (p[1] or "", p[2], p[0]))
