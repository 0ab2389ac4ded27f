"""First-login cost of the simulator: what `POST /session` computes, on a world never touched.

`python -m benchmarks simulator [--days 730] [--rows-per-day 400 5000] [--repeat 3]`

The world's history is `--days` long (default two years) and ends at a fixed simulated now, so
every run measures the same world. For each rows-per-day figure, printed:

- cold first login: a fresh world computes every account's balance and open positions at now,
  as `POST /session` does (its `accounts` list carries each account's balance block); the
  median of `--repeat` fresh worlds, with the number of whole days generated (must be 0) and
  the items built alone;
- warm login: the same computation again on the last world (items cached);
- baseline, in the same run: the time to generate ONE whole day of that world, which is what the
  login would cost per day if balances were summed from the rows (the model before the totals
  were drawn swept every day of history, and today's and the open positions' source days).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from datetime import UTC, date, datetime, timedelta

from ledger_etl.simulator.catalog import MarketData
from ledger_etl.simulator.world import World, WorldConfig

END = date(2027, 1, 1)  # the simulated today of every run


def _world(start: date, rows_per_day: float) -> World:
    config = WorldConfig(start=start, rows_per_day=rows_per_day)
    return World(config, MarketData(config.seed))


def login_seconds(world: World, now: datetime) -> tuple[float, float]:
    """Every account's balance and open positions (balance, profitLoss, available): (wall
    seconds, CPU seconds of this process; on a shared machine the CPU time is the steadier)."""
    began, cpu = time.perf_counter(), time.process_time()
    for account in world.accounts:
        world.balance_at(account.index, now)
        world.open_positions(account.index, now)
    return time.perf_counter() - began, time.process_time() - cpu


def measure(days: int, rows_per_day: float, repeat: int) -> None:
    now = datetime(END.year, END.month, END.day, 12, tzinfo=UTC)
    start = END - timedelta(days=days)
    label = f"rows/day {rows_per_day:g}, {days} days"
    colds: list[tuple[float, float]] = []
    world = _world(start, rows_per_day)
    for _ in range(repeat):
        gc.collect()
        world = _world(start, rows_per_day)
        colds.append(login_seconds(world, now))
    items = world.items_built
    warm, _ = login_seconds(world, now)
    opened = sum(len(world.open_positions(a.index, now)) for a in world.accounts)
    walls, cpus = [c[0] for c in colds], [c[1] for c in colds]
    print(
        f"{label}: cold first login {statistics.median(walls):.3f} s wall, "
        f"{statistics.median(cpus):.3f} s CPU (median of {repeat}; wall min {min(walls):.3f}, "
        f"max {max(walls):.3f}); {world.days_generated} whole days generated, {items} items "
        f"built, {opened} open positions; warm login {warm:.3f} s",
        flush=True,
    )
    baseline = _world(start, rows_per_day)
    began, cpu = time.perf_counter(), time.process_time()
    baseline.day_events(END - timedelta(days=1))
    one_day, one_day_cpu = time.perf_counter() - began, time.process_time() - cpu
    print(
        f"{label}: baseline, one whole day generated {one_day:.2f} s wall, {one_day_cpu:.2f} s "
        f"CPU (summing the history that way would cost ~{one_day * days:.0f} s)",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks simulator")
    parser.add_argument("--days", type=int, default=730, help="history length (default 730)")
    parser.add_argument("--rows-per-day", type=float, nargs="+", default=[400.0, 5000.0])
    parser.add_argument("--repeat", type=int, default=3, help="cold logins measured (median)")
    args = parser.parse_args(argv or [])
    if args.days < 2 or args.repeat < 1:
        parser.error("--days must be at least 2 and --repeat at least 1")
    for rows in args.rows_per_day:
        measure(args.days, rows, args.repeat)
    return 0
