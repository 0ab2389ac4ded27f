"""Many logins side by side: does each login still run at its own rate limit?

A simulated deployment: `--logins` logins (default 20), each with `--accounts` accounts (3) and
its own rate limit (`--rate`, 10 req/s) on one simulator fleet (its own process) that adds
`--latency` (150 ms) to every answer. `--workers` workers (4) share the logins, each running
its share side by side in child processes (a prefork Celery worker with that concurrency), one
login's months and accounts one after another (its pool allows one API step at a time). Every
login fetches both history endpoints of `--months` (3) complete months into its own ledger.

The slowest login cannot finish before its requests / its rate; neither can the deployment:

    bound = max over logins (requests seen by the login's simulator / rate)
    ratio = total wall time / bound                                   target: <= 1.2

The slowest login is then run again alone (a fresh ledger, same work) as the baseline of the
same run: `ratio vs alone` says what sharing the machine with the others cost.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from benchmarks.fetch import month_range
from ledger_etl.capital import CapitalClient
from ledger_etl.ledger.db import make_engine, upgrade
from ledger_etl.monthly import sync_month

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
TARGET_RATIO = 1.2
# The simulator stands for the broker's servers, which would not share this machine's two
# cores with the workers. By default everything runs at one priority (the harder case);
# `--worker-nice N` runs the workers below the simulator's priority instead.
WORKER_NICENESS = 0
ENDPOINTS = ("transactions", "activity")


@dataclass(frozen=True)
class Login:
    name: str
    url: str
    key: str
    identifier: str
    password: str
    accounts: tuple[str, ...]


def _serve(port: int, logins: int, accounts: int, start: str, rate: int, latency: float) -> None:
    """The fleet process: every login its own world, credentials and limit."""
    from datetime import date

    from ledger_etl.simulator import Clock, SimulatorConfig, WorldConfig
    from ledger_etl.simulator.fleet import FleetServer
    from ledger_etl.simulator.server import tune_gc_for_serving

    faults = {"rules": [{"kind": "latency", "seconds": latency}]} if latency > 0 else {}
    configs = {
        f"login{i:02d}": SimulatorConfig(
            api_key=f"key-{i}", identifier=f"ops{i}@example.com", password=f"pw-{i}",
            world=WorldConfig(seed=1000 + i, start=date.fromisoformat(start), accounts=accounts),
            rate_limit_per_second=rate, faults=faults, request_log_size=200_000,
        )
        for i in range(1, logins + 1)
    }  # fmt: skip
    tune_gc_for_serving()
    FleetServer(configs, clock=Clock(NOW), port=port).start()
    while True:
        time.sleep(3600)


def _login_work(
    login: Login, months: list[str], rate: float, folder: str
) -> tuple[float, float, float]:
    """One login's backfill: its accounts and months in order, on its own client. Returns when
    it began and ended (epoch seconds: comparable across the worker processes) and the CPU
    seconds it took."""
    engine = make_engine(f"sqlite:///{folder}/{login.name}.sqlite")
    began = time.time()
    cpu = time.process_time()
    with CapitalClient(
        login.url, login.key, login.identifier, login.password, rate_limit=rate
    ) as client:
        for account in login.accounts:
            for month in months:
                for endpoint in ENDPOINTS:  # the two raw assets, one step after the other
                    sync_month(client, engine, account, month, [endpoint])
    engine.dispose()
    return began, time.time(), time.process_time() - cpu


def _run_login(
    login: Login, months: list[str], rate: float, folder: str, niceness: int
) -> tuple[float, float, float]:
    """A worker's child process running one login (a prefork Celery worker runs each task in
    a child process: the ledger's schema check is not made for threads)."""
    logging.getLogger("ledger_etl").setLevel(logging.WARNING)
    if niceness:
        os.nice(niceness)
    return _login_work(login, months, rate, folder)


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def _requests(url: str) -> dict[str, tuple[int, int]]:
    """Per login: (requests seen, of them answered 429) so far."""
    logins = httpx.get(f"{url}/_sim/requests", timeout=120).json()["logins"]
    return {name: (int(v["requests"]), int(v["throttled"])) for name, v in logins.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--accounts", type=int, default=3)
    parser.add_argument("--months", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate", type=int, default=10, help="per login, requests per second")
    parser.add_argument("--latency", type=float, default=0.15, help="seconds per answer")
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=WORKER_NICENESS,
        help="niceness of the worker processes (default 0: they compete with the simulator)",
    )
    args = parser.parse_args(list(argv or []))
    logging.getLogger("ledger_etl").setLevel(logging.WARNING)
    start, _ = month_range(NOW, args.months)
    months = [f"{start.year + (start.month - 1 + i) // 12}-{(start.month - 1 + i) % 12 + 1:02d}"
              for i in range(args.months)]  # fmt: skip

    from ledger_etl.simulator.server import free_port

    port = free_port()
    spawn = multiprocessing.get_context("spawn")
    fleet = spawn.Process(
        target=_serve,
        args=(port, args.logins, args.accounts, start.date().isoformat(), args.rate, args.latency),
        daemon=True,
    )
    fleet.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{url}/_sim/requests", timeout=5)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or not fleet.is_alive():
                    raise RuntimeError("the simulator fleet did not start") from None
                time.sleep(0.2)
        began = time.perf_counter()
        logins = []
        for i in range(1, args.logins + 1):  # each login's world generated before timing
            name = f"login{i:02d}"
            answer = httpx.get(f"{url}/{name}/_sim/accounts", timeout=600).json()
            accounts = tuple(a["accountId"] for a in answer["accounts"])
            login = Login(name, f"{url}/{name}", f"key-{i}", f"ops{i}@example.com", f"pw-{i}",
                          accounts)  # fmt: skip
            with CapitalClient(login.url, login.key, login.identifier, login.password) as c:
                c.accounts()  # the first login computes the world's balances
            logins.append(login)
        warm = time.perf_counter() - began
        before = _requests(url)
        fleet_cpu = _cpu_seconds(fleet.pid)
        with tempfile.TemporaryDirectory() as folder:
            for login in logins:
                upgrade(make_engine(f"sqlite:///{folder}/{login.name}.sqlite"))
            per_worker = -(-len(logins) // args.workers)
            with spawn.Pool(args.workers * per_worker) as pool:
                ends = pool.starmap(
                    _run_login, [(x, months, args.rate, folder, args.worker_nice) for x in logins]
                )
        fleet_cpu = _cpu_seconds(fleet.pid) - fleet_cpu
        fleet_rss = _rss_mib(fleet.pid)
        after = _requests(url)
        spans = {x.name: span[:2] for x, span in zip(logins, ends, strict=True)}
        login_cpu = sum(span[2] for span in ends)
        # From the first login's first request to the last login's end (process start-up,
        # which a running Celery worker does not pay per step, is left out).
        wall = max(e for _, e in spans.values()) - min(b for b, _ in spans.values())
        walls = {k: e - b for k, (b, e) in spans.items()}
        seen = {name: after[name][0] - before[name][0] for name in walls}
        throttled = sum(after[name][1] - before[name][1] for name in walls)
        slowest = max(seen, key=lambda n: seen[n])
        bound = seen[slowest] / args.rate
        # The baseline: the slowest login alone, same work, fresh ledger.
        with tempfile.TemporaryDirectory() as folder:
            upgrade(make_engine(f"sqlite:///{folder}/{slowest}.sqlite"))
            login = next(x for x in logins if x.name == slowest)
            alone_before = _requests(url)[slowest][0]
            alone_began, alone_ended, _ = _login_work(login, months, args.rate, folder)
            alone = alone_ended - alone_began
            alone_requests = _requests(url)[slowest][0] - alone_before
    finally:
        fleet.kill()
    total = sum(seen.values())
    ratio = wall / bound
    verdict = "within target" if ratio <= TARGET_RATIO else "ABOVE TARGET"
    lines = [
        f"deployment                          {args.logins} logins x {args.accounts} accounts x "
        f"{args.months} months ({months[0]}..{months[-1]}), transactions + activity",
        f"workers                             {args.workers}, each "
        f"{-(-args.logins // args.workers)} logins side by side (child processes)",
        f"latency per answer / rate per login {args.latency * 1000:.0f} ms / {args.rate} req/s",
        f"worker niceness                     {args.worker_nice} (the simulator runs at 0)",
        f"simulator warm-up (not timed)       {warm:.1f} s",
        f"requests, all logins                {total}  ({total / wall:.1f} req/s overall, "
        f"{throttled} answered 429)",
        f"slowest login                       {slowest}: {seen[slowest]} requests, "
        f"{walls[slowest]:.1f} s",
        f"bound: its requests / its rate      {bound:.1f} s",
        f"total wall time                     {wall:.1f} s",
        f"ratio wall / bound                  {ratio:.3f}  (target <= {TARGET_RATIO}: {verdict})",
        f"baseline: slowest login alone       {alone:.1f} s for {alone_requests} requests "
        f"(ratio to bound {alone / bound:.3f})",
        f"ratio wall / slowest login alone    {wall / alone:.3f}",
        f"simulator RSS after the deployment  {fleet_rss:.0f} MiB",
        f"CPU: simulator / all logins         {fleet_cpu:.1f} s / {login_cpu:.1f} s "
        f"({(fleet_cpu + login_cpu) / wall:.2f} of {os.cpu_count()} cores over the wall time)",
        f"per-login wall time min/median/max  {min(walls.values()):.1f} / "
        f"{sorted(walls.values())[len(walls) // 2]:.1f} / {max(walls.values()):.1f} s",
    ]
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
