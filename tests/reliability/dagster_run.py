"""One Dagster run of every asset and check for one (month, account) partition, in this process.

`python -m tests.reliability.dagster_run --month 2025-12 --account ID --tag source=schedule`
materializes into the instance at `$DAGSTER_HOME`, with the API and the ledger configured from the
environment (`CAPITAL_*`, `LEDGER_*`) exactly as a deployed run reads them, and prints one JSON
line: success, the run id, each asset's metadata and each check's outcome. Crash and concurrency
cases start it as a separate process so it can be killed or run twice at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import dagster as dg

from ledger_etl.defs.history.assets import (
    ledger_entries,
    monthly_statement,
    raw_activity,
    raw_transactions,
)
from ledger_etl.defs.history.checks import CHECKS
from ledger_etl.defs.history.partitions import ACCOUNTS, partition_key
from ledger_etl.defs.resources import resources_from_settings

ASSETS = [raw_transactions, raw_activity, ledger_entries, monthly_statement]


def _plain(value: Any) -> Any:
    inner = getattr(value, "value", value)
    return inner if isinstance(inner, str | int | float | bool | dict | list | None) else str(inner)


def materialize_partition(
    instance: dg.DagsterInstance, month: str, account: str, tags: dict[str, str] | None = None
) -> dict[str, Any]:
    if not instance.has_dynamic_partition(ACCOUNTS.name, account):
        try:
            instance.add_dynamic_partitions(ACCOUNTS.name, [account])
        except Exception:  # another run registered it at the same moment
            if not instance.has_dynamic_partition(ACCOUNTS.name, account):
                raise
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        instance=instance,
        resources=resources_from_settings(),
        partition_key=partition_key(month, account),
        tags=tags or {},
        raise_on_error=False,
    )
    assets = {
        event.asset_key.to_user_string(): {
            k: _plain(v) for k, v in event.materialization.metadata.items()
        }
        for event in result.get_asset_materialization_events()
    }
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    return {"success": result.success, "run_id": result.run_id, "assets": assets, "checks": checks}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--month", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--tag", action="append", default=[], help="key=value (repeatable)")
    args = parser.parse_args(argv)
    tags = dict(t.split("=", 1) for t in args.tag)
    with dg.DagsterInstance.get() as instance:
        outcome = materialize_partition(instance, args.month, args.account, tags)
    print(json.dumps(outcome, default=str))
    return 0 if outcome["success"] else 1


if __name__ == "__main__":
    sys.exit(main())
