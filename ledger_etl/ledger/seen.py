"""Which run last saw a raw row: derived from the fetch log, never written per row.

A re-sync that finds nothing new must not rewrite every raw row it read (on PostgreSQL that cost
most of a re-ingest and grew the WAL and the backups for no information). The fetch log already
says which run fetched which window, when, and which references came back; so the last run that
saw a raw row is the run of the newest *complete* fetch whose window holds the row's timestamp
(and, for transactions, whose `ids` list its reference). The view `raw_last_seen` (created by
migration 0004, reference DDL in `sql/`) spells that out on both backends:

- `first_run_id`: the run that stored the row (stored on the row, written once);
- `last_run_id`: the newest of that run, the fetching run above, and `raw_seen_legacy` (what
  `raw_*.last_run_id` held before 0004 where the fetch log could not say it, e.g. a rebuild).

Run ids sort by start time (`ledger_etl.runs`), so "newest" is a string comparison.
Fetch windows are at most `WINDOW_SPAN` long (tiles of one day, their split halves, two-second
edge probes), which bounds the fetch-log search to windows starting a day before the row.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, text

from ledger_etl.ledger.store import sqlite_time

VIEW = "raw_last_seen"
WINDOW_SPAN_DAYS = 1  # the longest history fetch window (capital.history: max_span of one day)

# (endpoint, raw table, key column, whether fetch_log.ids lists the key)
_SOURCES = (
    ("transactions", "raw_transactions", "reference", True),
    ("activity", "raw_activities", "activity_key", False),
)


def _lookback(dialect: str) -> str:
    if dialect == "postgresql":
        return f"r.date_utc - interval '{WINDOW_SPAN_DAYS} day'"
    return f"datetime(r.date_utc, '-{WINDOW_SPAN_DAYS} day')"


def _listed(dialect: str, key: str) -> str:
    if dialect == "postgresql":
        return f"f.ids::jsonb @> jsonb_build_array(r.{key})"
    return f"EXISTS (SELECT 1 FROM json_each(f.ids) AS j WHERE j.value = r.{key})"


def _fetched(dialect: str, endpoint: str, key: str, listed: bool, run_keys: bool) -> str:
    condition = f" AND {_listed(dialect, key)}" if listed else ""
    return (
        f"(SELECT f.{'run_key' if run_keys else 'run_id'} FROM fetch_log AS f "
        f"WHERE f.account_id = r.account_id "
        f"AND f.endpoint = '{endpoint}' AND f.outcome = 'complete' "
        f"AND f.window_start >= {_lookback(dialect)} "
        f"AND f.window_start <= r.date_utc AND f.window_end >= r.date_utc{condition} "
        "ORDER BY f.id DESC LIMIT 1)"
    )


def view_sql(dialect: str, *, run_keys: bool = True) -> str:
    """`CREATE VIEW raw_last_seen` for the dialect (`sqlite` or `postgresql`).

    Rows and the fetch log hold integer run keys (`runs.run_key`, revision 0010); the view
    shows public run ids. `run_keys=False` is the view of revisions 0004 to 0009, over the
    public ids the rows held then (the migrations build it).
    """
    first = "first_run_key" if run_keys else "first_run_id"
    parts = [
        f"SELECT '{endpoint}' AS endpoint, r.account_id AS account_id, r.{key} AS row_key, "
        f"r.date_utc AS date_utc, r.{first} AS first_run, "
        f"{_fetched(dialect, endpoint, key, listed, run_keys)} AS fetched_run FROM {table} AS r"
        for endpoint, table, key, listed in _SOURCES
    ]
    rows = "\n  UNION ALL\n  ".join(parts)
    if run_keys:
        first_id, fetched_id = "fr.run_id", "COALESCE(lr.run_id, fr.run_id)"
        joins = (
            "JOIN runs AS fr ON fr.run_key = x.first_run\n"
            "LEFT JOIN runs AS lr ON lr.run_key = x.fetched_run\n"
        )
    else:
        first_id, fetched_id, joins = "x.first_run", "COALESCE(x.fetched_run, x.first_run)", ""
    legacy = f"COALESCE(l.run_id, {first_id})"
    return (
        f"CREATE VIEW {VIEW} AS\n"
        f"SELECT x.endpoint, x.account_id, x.row_key, x.date_utc, {first_id} AS first_run_id,\n"
        f"  CASE WHEN {legacy} > {fetched_id} THEN {legacy} ELSE {fetched_id} END AS last_run_id\n"
        f"FROM (\n  {rows}\n) AS x\n{joins}"
        "LEFT JOIN raw_seen_legacy AS l ON l.endpoint = x.endpoint "
        "AND l.account_id = x.account_id AND l.row_key = x.row_key"
    )


def last_seen_runs(
    conn: Connection, account_id: str, endpoint: str, start: datetime, end: datetime
) -> dict[str, str]:
    """Row key -> the last run that saw it, for the account's raw rows of `[start, end)`."""
    bounds = {"a": account_id, "e": endpoint}
    if conn.dialect.name == "sqlite":  # stored as naive UTC text; compare alike
        bounds |= {"s": sqlite_time(start), "t": sqlite_time(end)}
    else:
        bounds |= {"s": start, "t": end}
    rows = conn.execute(
        text(
            f"SELECT row_key, last_run_id FROM {VIEW} WHERE account_id = :a AND endpoint = :e "
            "AND date_utc >= :s AND date_utc < :t"
        ),
        bounds,
    )
    return {row[0]: row[1] for row in rows}
