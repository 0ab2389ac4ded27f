"""First-login cost of the simulator: the balance and open positions `POST /session` computes.

`python -m benchmarks simulator [--days 730] [--rows-per-day 400 5000] [--max-cold 90]
[--cache-dir DIR]`

The world's history is `--days` long (default two years) and ends at a fixed simulated now, so
every run measures the same world. For each rows-per-day figure, three first logins are timed:

- cold: nothing computed yet, so the login sweeps every day of history (`simulator.balances`);
- restart: a fresh simulator whose balance checkpoint is on disk; it generates only the last
  `HORIZON_DAYS` + 1 days, which today's rows and the open positions come from;
- warmed: a fresh simulator after `Simulator.start_warm_up`, which `simulator serve` runs in the
  background from the start.

Checkpoints are kept in `--cache-dir` (default `<project>/var/bench/simulator`), so the cold
sweep of a world is paid once per version of the generator. When a world has no checkpoint and
its sweep, estimated from a short sample, would exceed `--max-cold` seconds, the cold figure is
that estimate and the world is measured over the largest history the budget allows instead:
the restart and warmed logins do not depend on the history's length beyond reading the
checkpoint, whose time is printed. Run once with a larger `--max-cold` to build the checkpoint.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from ledger_etl.settings import project_root
from ledger_etl.simulator import Clock, Simulator, SimulatorConfig
from ledger_etl.simulator.balances import DayTotals
from ledger_etl.simulator.catalog import MarketData
from ledger_etl.simulator.world import World, WorldConfig

END = date(2027, 1, 1)  # the simulated today of every run
SAMPLE_DAYS = 7


def _world(start: date, rows_per_day: float, cache_dir: Path | None) -> World:
    config = WorldConfig(start=start, rows_per_day=rows_per_day)
    return World(config, MarketData(config.seed), checkpoint_dir=cache_dir)


def first_login_seconds(world: World, now: datetime) -> float:
    """What `POST /session` computes: the preferred account's balance and open positions."""
    began = time.perf_counter()
    preferred = next(a for a in world.accounts if a.preferred)
    world.balance_at(preferred.index, now)
    world.open_positions(preferred.index, now)
    return time.perf_counter() - began


def sweep_seconds_per_day(start: date, rows_per_day: float) -> float:
    """The cold sweep's cost per day: `SAMPLE_DAYS` days generated at the end of the history.
    (The first days of a world are light: accounts open one after another and trade later.)"""
    world = _world(start, rows_per_day, None)
    began = time.perf_counter()
    for back in range(SAMPLE_DAYS, 0, -1):
        world.day_events(END - timedelta(days=back))
    return (time.perf_counter() - began) / SAMPLE_DAYS


def measure(days: int, rows_per_day: float, max_cold: float, cache_dir: Path) -> None:
    now = datetime(END.year, END.month, END.day, 12, tzinfo=UTC)
    start = END - timedelta(days=days)
    label = f"rows/day {rows_per_day:g}"
    checkpoint = DayTotals(_world(start, rows_per_day, None), cache_dir).path
    if checkpoint is not None and checkpoint.exists():
        print(f"{label}: {days} days, checkpoint already on disk (cold sweep not repeated)")
    else:
        rate = sweep_seconds_per_day(start, rows_per_day)
        estimate = rate * days
        if estimate > max_cold:
            shorter = max(SAMPLE_DAYS, int(max_cold / rate))
            print(
                f"{label}: cold first login over {days} days ~{estimate:.0f} s (estimated: "
                f"{rate:.3f} s/day over {SAMPLE_DAYS} sample days), over --max-cold {max_cold:g} s;"
                f" measuring {shorter} days instead"
            )
            start, days = END - timedelta(days=shorter), shorter
        seconds = first_login_seconds(_world(start, rows_per_day, cache_dir), now)
        print(f"{label}: {days} days, cold first login {seconds:.2f} s (whole history swept)")
    gc.collect()  # each simulator is fresh: the previous one's day cache must not be walked
    began = time.perf_counter()
    restarted = _world(start, rows_per_day, cache_dir)
    loaded = time.perf_counter() - began
    seconds = first_login_seconds(restarted, now)
    print(
        f"{label}: {days} days, restart first login {seconds:.2f} s "
        f"({restarted.days_generated} days generated; checkpoint read in {loaded:.3f} s)"
    )
    del restarted
    gc.collect()
    config = SimulatorConfig(world=WorldConfig(start=start, rows_per_day=rows_per_day))
    warmed = Simulator(replace(config, cache_dir=cache_dir), clock=Clock(now))
    began = time.perf_counter()
    warmed.start_warm_up().join()  # as `simulator serve` does, on its own thread
    warm_up = time.perf_counter() - began
    seconds = first_login_seconds(warmed.world, now)
    print(
        f"{label}: {days} days, warmed first login {seconds:.3f} s "
        f"(background warm-up took {warm_up:.2f} s)",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks simulator")
    parser.add_argument("--days", type=int, default=730, help="history length (default 730)")
    parser.add_argument("--rows-per-day", type=float, nargs="+", default=[400.0, 5000.0])
    parser.add_argument(
        "--max-cold", type=float, default=90.0, help="budget for one cold sweep, seconds"
    )
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--no-keep", action="store_true", help="use a throwaway cache dir")
    args = parser.parse_args(argv or [])
    if args.days < SAMPLE_DAYS:
        parser.error(f"--days must be at least {SAMPLE_DAYS}")
    if args.no_keep:
        with tempfile.TemporaryDirectory() as tmp:
            for rows in args.rows_per_day:
                measure(args.days, rows, args.max_cold, Path(tmp))
        return 0
    cache_dir = args.cache_dir or project_root() / "var" / "bench" / "simulator"
    for rows in args.rows_per_day:
        measure(args.days, rows, args.max_cold, cache_dir)
    return 0
