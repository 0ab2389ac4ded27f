"""Shared machinery of the reliability cases: run the CLI, compare with ground truth, record.

`record(...)` appends one JSON line per measured case to `$LEDGER_RELIABILITY_RESULTS` (a no-op
when unset); `report.py` turns those lines into docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, func, select

from ledger_etl.ledger import schema as s
from ledger_etl.simulator import SimulatorServer
from ledger_etl.statements import verify_tree
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD
from tests.integration.ledger_helpers import ledger_amounts, truth, truth_amounts

RESULTS_ENV = "LEDGER_RELIABILITY_RESULTS"
ROOT = Path(__file__).resolve().parents[2]


# -- measured results ---------------------------------------------------------------------------
def record(case: str, backend: str, outcome: str = "pass", **figures: Any) -> None:
    """Append the case's measured figures to the results file (no-op without the variable)."""
    target = os.environ.get(RESULTS_ENV)
    if not target:
        return
    line = {"case": case, "backend": backend, "outcome": outcome, **figures}
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, default=str, sort_keys=True) + "\n")


def sim_stats(server: SimulatorServer) -> dict[str, Any]:
    return httpx.get(server.url + "/_sim/stats", timeout=30).json()


@dataclass
class Measure:
    """Figures gathered while a case runs; `done()` records them."""

    case: str
    backend: str
    server: SimulatorServer | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, value: int) -> None:
        self.figures[name] = self.figures.get(name, 0) + value

    def done(self, **extra: Any) -> None:
        figures = {**self.figures, **extra}
        if self.server is not None:
            stats = sim_stats(self.server)
            figures.setdefault("faults_fired", stats.get("faults_fired", 0))
            figures.setdefault("logins", stats.get("logins", 0))
            figures.setdefault("throttled", stats.get("throttled", 0))
            figures.setdefault("requests", stats.get("requests", 0))
        record(self.case, self.backend, **figures)


# -- the CLI in its own process -----------------------------------------------------------------
def cli_env(
    server: SimulatorServer | None,
    database_url: str,
    export_dir: Path | None = None,
    *,
    api_key: str = API_KEY,
    identifier: str = IDENTIFIER,
    password: str = PASSWORD,
    **extra: str,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAPITAL_", "LEDGER_"))}
    env.update(
        LEDGER_DATABASE_URL=database_url,
        CAPITAL_API_KEY=api_key,
        CAPITAL_IDENTIFIER=identifier,
        CAPITAL_PASSWORD=password,
        CAPITAL_RATE_LIMIT="200",
        PYTHONPATH=str(ROOT),
    )
    if server is not None:
        env["CAPITAL_API_URL"] = server.url
    if export_dir is not None:
        env["LEDGER_EXPORT_DIR"] = str(export_dir)
    env.update(extra)
    return env


def run_cli(
    args: Sequence[str],
    env: dict[str, str],
    *,
    timeout: float = 300,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger_etl.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
        preexec_fn=preexec_fn,  # only resource limits and the umask
    )


def sync_args(start: datetime, end: datetime, accounts: Iterable[str] = ()) -> list[str]:
    args = ["sync", "--from", f"{start:%Y-%m-%d}", "--to", f"{end:%Y-%m-%d}"]
    for account in accounts:
        args += ["--account", account]
    return args


def sync_counters(stdout: str) -> dict[str, int]:
    """Totals of the `sync` summary table (rows, quarantined, windows, failed, retries)."""
    totals = {"rows": 0, "quarantined": 0, "windows": 0, "failed_windows": 0, "retries": 0}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 10 and parts[1] in ("transactions", "activity"):
            rows, _new, _changed, _same, quarantined, windows, failed, retries = map(int, parts[2:])
            totals["rows"] += rows
            totals["quarantined"] += quarantined
            totals["windows"] += windows
            totals["failed_windows"] += failed
            totals["retries"] += retries
    return totals


# -- what must hold -----------------------------------------------------------------------------
def activity_count(engine: Engine, account: str, start: datetime, end: datetime) -> int:
    a = s.activities
    query = (
        select(func.count())
        .select_from(a)
        .where(a.c.account_id == account, a.c.occurred_at >= start, a.c.occurred_at < end)
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def duplicated_keys(engine: Engine) -> dict[str, int]:
    """Keys that occur more than once, per table (the ledger's keys must be unique)."""
    found = {}
    for table, columns in (
        (s.ledger_entries, ("account_id", "reference")),
        (s.activities, ("account_id", "activity_key")),
        (s.raw_transactions, ("account_id", "reference")),
        (s.raw_activities, ("account_id", "activity_key")),
    ):
        cols = [table.c[c] for c in columns]
        query = select(*cols).group_by(*cols).having(func.count() > 1)
        with engine.connect() as conn:
            found[table.name] = len(conn.execute(query).all())
    return {k: v for k, v in found.items() if v}


def assert_ledger_equals_truth(
    server: SimulatorServer,
    engine: Engine,
    accounts: Sequence[str],
    start: datetime,
    end: datetime,
) -> int:
    """Transactions by reference and amount and the activity count equal the simulator's ground
    truth in `[start, end)`, and no key occurs twice. Returns the number of rows compared."""
    compared = 0
    for account in accounts:
        expected = truth_amounts(server, account, start, end)
        stored = ledger_amounts(engine, account, start, end)
        missing = sorted(set(expected) - set(stored))[:5]
        extra = sorted(set(stored) - set(expected))[:5]
        wrong = {r: (stored[r], expected[r]) for r in stored if r in expected}
        wrong = {r: v for r, v in wrong.items() if v[0] != v[1]}
        assert not missing and not extra and not wrong, (account, missing, extra, wrong)
        activities = len(truth(server, "activity", account, start, end))
        stored_activities = activity_count(engine, account, start, end)
        assert stored_activities == activities, (account, stored_activities, activities)
        compared += len(expected) + activities
    assert duplicated_keys(engine) == {}
    return compared


def quarantined(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(s.quarantine)).scalar_one())


def statement_folders(export_dir: Path, account: str, month: str) -> list[Path]:
    month_dir = export_dir / account / month
    if not month_dir.is_dir():
        return []
    return sorted(
        (p for p in month_dir.iterdir() if p.is_dir() and p.name.startswith("v")),
        key=lambda p: int(p.name[1:]),
    )


def assert_statement_equals_ledger(
    engine: Engine, folder: Path, account: str, start: datetime, end: datetime
) -> dict[str, Any]:
    """The published version's totals and rows equal the ledger; the whole tree verifies."""
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    month = ledger_amounts(engine, account, start, end)
    before = ledger_amounts(engine, account, None, start)
    totals = manifest["totals"]
    assert Decimal(totals["movement"]) == sum(month.values(), Decimal(0))
    assert Decimal(totals["opening_balance"]) == sum(before.values(), Decimal(0))
    assert Decimal(totals["closing_balance"]) == sum(
        [*before.values(), *month.values()], Decimal(0)
    )
    assert manifest["row_counts"]["entries"] == len(month)
    document = json.loads((folder / "statement.json").read_text(encoding="utf-8"))
    references = [line["reference"] for line in document["entries"]]
    assert sorted(references) == sorted(month) and len(set(references)) == len(references)
    assert verify_tree(folder.parent.parent) == []
    return manifest


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def wait_for(predicate: Callable[[], bool], timeout: float = 60, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def run_totals(engine: Engine) -> dict[str, int]:
    """Retries, re-logins, splits and quarantined rows as recorded in the ledger's run metadata."""
    totals = {"retries": 0, "relogins": 0, "split_windows": 0, "quarantined": 0, "flagged": 0}
    with engine.connect() as conn:
        summaries = [r.summary for r in conn.execute(select(s.runs.c.summary))]
    for summary in summaries:
        for endpoints in ((summary or {}).get("accounts") or {}).values():
            for data in endpoints.values():
                for name in totals:
                    totals[name] += int(data.get(name) or 0)
    return totals
