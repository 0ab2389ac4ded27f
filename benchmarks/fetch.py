"""History backfill throughput under the API's rate limit, against the bundled simulator.

One account, both history endpoints, `--months` complete calendar months, with the simulator
enforcing `--rate` requests per second and adding `--latency` seconds to every answer. The
client can never be faster than `requests / rate`; the figure of merit is how close it gets:

    ratio = wall time / (requests made / rate)        target: <= 1.15

A run with latency is followed by the same run without latency (unless `--latency 0`), so the
cost of slow answers and the cost of pacing can be told apart.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from ledger_etl.capital import ACTIVITY, TRANSACTIONS, CapitalClient, fetch_history
from ledger_etl.simulator import Clock, SimulatorConfig, SimulatorServer, WorldConfig

# The simulator's "now": fixed, so every run fetches the same rows.
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
TARGET_RATIO = 1.15


@dataclass(frozen=True)
class Figures:
    label: str
    start: datetime
    end: datetime
    rate: int
    latency: float
    workers: int | None
    requests: int
    history_requests: int
    wall_s: float
    retries: int
    client_429: int
    server_429: int
    relogins: int
    windows: int
    failed_windows: int
    rows: int

    @property
    def lower_bound_s(self) -> float:
        return self.requests / self.rate

    @property
    def ratio(self) -> float:
        return self.wall_s / self.lower_bound_s if self.lower_bound_s else float("nan")


def month_range(now: datetime, months: int) -> tuple[datetime, datetime]:
    """The `months` complete calendar months before `now`'s month, as `[start, end)`."""
    end = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    index = end.year * 12 + (end.month - 1) - months
    return end.replace(year=index // 12, month=index % 12 + 1), end


def run(
    label: str,
    *,
    months: int,
    latency: float,
    rate: int,
    rows_per_day: float,
    seed: int,
    workers: int | None,
) -> Figures:
    start, end = month_range(NOW, months)
    faults = {"rules": [{"kind": "latency", "seconds": latency}]} if latency > 0 else {}
    config = SimulatorConfig(
        world=WorldConfig(seed=seed, start=start.date(), accounts=1, rows_per_day=rows_per_day),
        rate_limit_per_second=rate,
        faults=faults,
    )
    with SimulatorServer(config, clock=Clock(NOW)) as server:
        account_id = server.simulator.world.accounts[0].account_id
        client = CapitalClient(
            server.url,
            config.api_key,
            config.identifier,
            config.password,
            rate_limit=rate,  # pacing as configured in production: the per-key limiters
        )
        with client:
            began = time.perf_counter()
            results = [
                fetch_history(client, account_id, spec, start, end, max_workers=workers)
                for spec in (TRANSACTIONS, ACTIVITY)
            ]
            wall = time.perf_counter() - began
            stats = httpx.get(f"{server.url}/_sim/stats", timeout=30).json()
            client_stats = client.stats.snapshot()
    by_path = stats["by_path"]
    return Figures(
        label=label,
        start=start,
        end=end,
        rate=rate,
        latency=latency,
        workers=workers,
        requests=int(stats["requests"]),
        history_requests=sum(v for k, v in by_path.items() if k.startswith("/history/")),
        wall_s=wall,
        retries=client_stats["retries"],
        client_429=client_stats["rate_limited"],
        server_429=int(stats["by_status"].get("429", 0)),
        relogins=client_stats["relogins"],
        windows=sum(len(r.records) for r in results),
        failed_windows=sum(len(r.failed) for r in results),
        rows=sum(len(r.rows) for r in results),
    )


def report(f: Figures) -> None:
    verdict = "within target" if f.ratio <= TARGET_RATIO else "ABOVE TARGET"
    lines = [
        f"--- {f.label} ---",
        f"range                               [{f.start:%Y-%m-%d}, {f.end:%Y-%m-%d}), "
        "1 account, transactions + activity",
        f"simulated latency per request       {f.latency * 1000:.0f} ms",
        f"rate limit (simulator and client)   {f.rate} req/s",
        f"workers                             {f.workers or 'default'}",
        f"requests made (/_sim/stats)         {f.requests}  ({f.history_requests} history)",
        f"wall time                           {f.wall_s:.2f} s",
        f"rate-limit lower bound              {f.lower_bound_s:.2f} s"
        f"  ({f.requests} requests / {f.rate} req/s)",
        f"ratio wall / lower bound            {f.ratio:.3f}  (target <= {TARGET_RATIO}: {verdict})",
        f"achieved rate                       {f.requests / f.wall_s:.2f} req/s",
        f"retries (client)                    {f.retries}",
        f"429s seen (client / simulator)      {f.client_429} / {f.server_429}",
        f"re-logins                           {f.relogins}",
        f"windows (failed)                    {f.windows} ({f.failed_windows})",
        f"rows fetched                        {f.rows}",
    ]
    print("\n".join(lines), flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks fetch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--months", type=int, default=12, help="complete months (default 12)")
    parser.add_argument(
        "--latency", type=float, default=0.15, help="seconds added to every answer (0.15)"
    )
    parser.add_argument("--rate", type=int, default=10, help="requests per second (10)")
    parser.add_argument("--rows-per-day", type=float, default=12.0, help="world volume (12)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workers", type=int, default=None, help="fetch threads (default: auto)")
    args = parser.parse_args(argv)
    if args.months < 1 or args.rate < 1 or args.latency < 0:
        parser.error("--months and --rate must be positive, --latency not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(argv or []))
    logging.getLogger("ledger_etl").setLevel(logging.WARNING)
    latencies = [args.latency] + ([0.0] if args.latency > 0 else [])
    for latency in latencies:
        label = f"with {latency * 1000:.0f} ms latency" if latency else "without latency"
        figures = run(
            label,
            months=args.months,
            latency=latency,
            rate=args.rate,
            rows_per_day=args.rows_per_day,
            seed=args.seed,
            workers=args.workers,
        )
        report(figures)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
