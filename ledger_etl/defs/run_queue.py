"""The run queue of the PostgreSQL profile: Dagster's `QueuedRunCoordinator`, which also tags
each history run with its login before queueing it.

The profile limits runs per value of the tag `ledger_etl/login` (one run per login at a time).
Runs the schedules and the command line start carry the tag; a backfill launched from the
Dagster UI carries only Dagster's partition tags. The login is part of the account partition key
(`<login>/<accountId>`), so it is read from those tags here, the one place every run passes
through, and the queue's own limit does the rest. A run whose partitions span several logins, or
carry none, is queued as it is.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg
from dagster._core.run_coordinator import SubmitRunContext

from ledger_etl.defs.scale import LOGIN_TAG
from ledger_etl.logins import split_account_key

PARTITION_TAG = "dagster/partition"
ACCOUNT_TAG = "dagster/partition/account"
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def _login_of_key(key: str) -> str | None:
    """The login of a `<account>|<month>` multi-partition key (or of a bare account key)."""
    account = key.split("|", 1)[0]
    return split_account_key(account)[0]


def login_of_run(tags: Mapping[str, str]) -> str | None:
    """The one login a run's partitions belong to, or None (none, or several)."""
    if tags.get(ACCOUNT_TAG):
        return split_account_key(tags[ACCOUNT_TAG])[0]
    if tags.get(PARTITION_TAG):
        return _login_of_key(tags[PARTITION_TAG])
    ends = [tags.get(name) for name in RANGE_TAGS]
    if all(ends):
        logins = {_login_of_key(str(end)) for end in ends}
        return logins.pop() if len(logins) == 1 else None
    return None


def tag_with_login(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dg.DagsterRun:
    """`run`, tagged with the login of its partitions when it lacks that tag (or has another)."""
    login = login_of_run(run.tags)
    if login is None or run.tags.get(LOGIN_TAG) == login:
        return run
    instance.add_run_tags(run.run_id, {LOGIN_TAG: login})
    return instance.get_run_by_id(run.run_id) or run


class LoginQueuedRunCoordinator(dg.QueuedRunCoordinator):
    """`QueuedRunCoordinator` that adds `ledger_etl/login` from the partition when missing."""

    def submit_run(self, context: SubmitRunContext) -> dg.DagsterRun:
        run = tag_with_login(self._instance, context.dagster_run)
        return super().submit_run(SubmitRunContext(run, context.workspace))
