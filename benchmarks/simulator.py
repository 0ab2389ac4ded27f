"""First-login cost of the simulator: the balance block `POST /session` computes.

`python -m benchmarks simulator [--start 2025-01-01] [--rows-per-day 400 5000] [--days N]`

For each rows-per-day figure a fresh `Simulator` is built (nothing cached) and the work of the first
login is timed: the preferred account's balance and its open positions at the simulator's now.
`--days` moves the start to that many days before today, for a quick, smaller run.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, date, datetime, timedelta

from ledger_etl.simulator.app import Simulator
from ledger_etl.simulator.config import SimulatorConfig


def first_login_seconds(start: date, rows_per_day: float) -> float:
    config = SimulatorConfig().with_overrides(start=start, rows_per_day=rows_per_day)
    sim = Simulator(config)
    now = datetime.now(UTC)
    began = time.perf_counter()
    preferred = next(a for a in sim.world.accounts if a.preferred)
    sim.world.balance_at(preferred.index, now)
    sim.world.open_positions(preferred.index, now)
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks simulator")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2025, 1, 1))
    parser.add_argument("--days", type=int, default=None)
    parser.add_argument("--rows-per-day", type=float, nargs="+", default=[400.0, 5000.0])
    args = parser.parse_args(argv or [])
    start = args.start
    if args.days is not None:
        start = datetime.now(UTC).date() - timedelta(days=args.days)
    for rows in args.rows_per_day:
        seconds = first_login_seconds(start, rows)
        print(f"start {start} rows/day {rows:g}: first login {seconds:.2f} s", flush=True)
    return 0
