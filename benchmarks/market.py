"""Market data: stream processing throughput, send-to-stored latency, memory, REST backfill pace.

- `throughput`: quote and OHLC frames as the simulator sends them, for 40 epics, processed on
  one core as the stream client does (parse with exact decimals, validate, aggregate bars,
  buffer quotes; then store the bars and write the quote Parquet files), against a plain
  `json.loads` loop over the same frames. Target: >= 50,000 quotes/s.
- `latency`: a simulator in another process on the real clock streams 40 epics at 10 quotes/s
  each; for every quote, the time from the simulator's send (its timestamp) to (a) the frame
  handled and (b) the quote durable in a Parquet file (rotation every `--rotate` seconds).
  The same run measures the client's RSS after `--warmup` seconds and at the end, and once a
  minute in between (`--duration`, 60 s by default; `--duration 1800` is the 30-minute run).
- `backfill`: one year of MINUTE_5 bars of one always-open epic over REST at `--rate`
  requests/s: ratio = wall time / (requests / rate). Target: <= 1.05.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import multiprocessing
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from ledger_etl.capital.client import CapitalClient
from ledger_etl.intervals import Window
from ledger_etl.ledger.db import make_engine, upgrade
from ledger_etl.market.backfill import backfill
from ledger_etl.market.quotes import QuoteFiles
from ledger_etl.market.stream import BarStream, StreamOptions
from ledger_etl.simulator import Clock, SimulatorConfig, SimulatorServer, WorldConfig
from ledger_etl.simulator.stream_bars import ohlc_event, side_bar
from ledger_etl.simulator.synthetic import MarketDataWithExtras, synthetic_epic

EPICS = [synthetic_epic(i) for i in range(1, 41)]
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def _frames(count: int) -> list[str]:
    """`count` quotes round-robin over 40 epics (one per second each), plus each minute's OHLC
    events (bid and ask) as the simulator would send them."""
    market = MarketDataWithExtras(7, 40)
    start = int(NOW.timestamp())
    frames: list[str] = []
    second = 0
    while len(frames) < count:
        t = start + second
        for epic in EPICS:
            series = market.series(epic)
            mid = series.mid_ticks(t)
            frames.append(json.dumps({"status": "OK", "destination": "quote", "payload": {
                "epic": epic, "product": "CFD", "bid": series.to_float(series.bid_ticks(mid)),
                "bidQty": 1e6, "ofr": series.to_float(series.ask_ticks(mid)), "ofrQty": 1e6,
                "timestamp": t * 1000 + 500}}, separators=(",", ":")))  # fmt: skip
            if t % 60 == 0 and second:
                for side in ("bid", "ask"):
                    bar = side_bar(series, t - 60, "MINUTE", "classic", side, t)
                    if bar is not None:
                        event = ohlc_event(epic, "MINUTE", "classic", side, bar)
                        frames.append(json.dumps(event, separators=(",", ":")))
        second += 1
    return frames


def throughput(args: argparse.Namespace) -> None:
    frames = _frames(args.quotes)
    quotes = sum(1 for f in frames if '"quote"' in f)
    began, cpu = time.perf_counter(), time.process_time()
    for text in frames:
        json.loads(text)
    floor = time.perf_counter() - began
    floor_cpu = time.process_time() - cpu
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/bench.sqlite")
        upgrade(engine)
        files = QuoteFiles(Path(folder) / "quotes")
        stream = BarStream(None, engine, StreamOptions(epics=EPICS), quote_files=files)  # type: ignore[arg-type]
        began, cpu = time.perf_counter(), time.process_time()
        server_ms = 0
        for text in frames:
            kind, value = stream.frames.handle(text, server_ms)
            if kind == "quote":
                server_ms = max(server_ms, value)
        handled = time.perf_counter() - began
        stream._flush()
        files.rotate()
        total = time.perf_counter() - began
        total_cpu = time.process_time() - cpu
        stored = files.rows_written
    print(f"frames {len(frames)} (quotes {quotes}, OHLC events {len(frames) - quotes})")
    print(f"json.loads floor:        {len(frames) / floor:>10,.0f} frames/s")
    print(f"parse+aggregate:         {quotes / handled:>10,.0f} quotes/s")
    print(f"parse+aggregate+write:   {quotes / total:>10,.0f} quotes/s  "
          f"(stored {stored} quotes; target >= 50,000/s)")  # fmt: skip
    ratio = total / floor
    print(f"ratio to json.loads:     {ratio:.2f}x the floor's time per frame")
    # CPU seconds of this process: less at the mercy of a shared machine than wall time
    print(f"per CPU second:          floor {len(frames) / floor_cpu:,.0f} frames/s, "
          f"parse+aggregate+write {quotes / total_cpu:,.0f} quotes/s, "
          f"ratio {total_cpu / floor_cpu:.2f}x "
          f"(load average {os.getloadavg()[0]:.1f})")  # fmt: skip


def _serve(port_queue: Any, stop: Any, tick: float, extra: int, rate_limit: int) -> None:
    config = SimulatorConfig(world=WorldConfig(seed=7)).with_overrides(
        stream_tick_seconds=tick, extra_markets=extra, rate_limit_per_second=rate_limit
    )
    clock = Clock(NOW) if rate_limit else Clock()
    with SimulatorServer(config, clock=clock) as server:
        port_queue.put(server.url)
        stop.wait()


def _start_simulator(tick: float, extra: int, rate_limit: int = 0) -> tuple[Any, Any, str]:
    ctx = multiprocessing.get_context("spawn")
    port_queue, stop = ctx.Queue(), ctx.Event()
    process = ctx.Process(target=_serve, args=(port_queue, stop, tick, extra, rate_limit))
    process.start()
    return process, stop, port_queue.get(timeout=60)


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class _Histogram:
    """Latencies in 0.1 ms buckets up to 60 s, in a fixed amount of memory: a list per quote
    would itself grow the RSS the run measures."""

    STEP = 1e-4
    SIZE = 600_000

    def __init__(self) -> None:
        self.counts = array.array("q", bytes(8 * self.SIZE))
        self.total = 0

    def add(self, seconds: float) -> None:
        self.counts[min(self.SIZE - 1, max(0, int(seconds / self.STEP)))] += 1
        self.total += 1

    def __len__(self) -> int:
        return self.total

    def percentile_ms(self, q: float) -> float:
        if self.total < 100:
            return 0.0
        wanted, seen = self.total * q / 100, 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= wanted:
                return (index + 0.5) * self.STEP * 1000
        return self.SIZE * self.STEP * 1000


class _TimedQuotes(QuoteFiles):
    """Quote files that note, per quote, when it was handled and when it became durable."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.handled = _Histogram()
        self.durable = _Histogram()

    def add(self, epic: str, ts_ms: int, bid: Decimal, ask: Decimal) -> None:
        self.handled.add(time.time() - ts_ms / 1000)
        super().add(epic, ts_ms, bid, ask)

    def rotate(self, buffers: Any = None) -> list[dict[str, Any]]:
        buffers = self.take() if buffers is None else buffers
        entries = super().rotate(buffers)
        now = time.time()
        for b in buffers.values():
            for ts in b.ts:
                self.durable.add(now - ts / 1000)
        return entries


def latency(args: argparse.Namespace) -> None:
    process, stop, url = _start_simulator(0.1, 40)
    try:
        with tempfile.TemporaryDirectory() as folder:
            engine = make_engine(f"sqlite:///{folder}/bench.sqlite")
            upgrade(engine)
            files = _TimedQuotes(Path(folder) / "quotes")
            client = CapitalClient(url, "sim-api-key", "sim@example.com", "sim-password")
            stream = BarStream(client, engine, StreamOptions(epics=EPICS, reconcile_s=30),
                               quote_files=files, rotate_s=args.rotate)  # fmt: skip

            samples: list[tuple[float, int]] = []

            async def run() -> tuple[int, int]:
                task = asyncio.create_task(stream.run(duration=args.duration))
                warmup = min(10.0, args.duration / 3) if args.warmup is None else args.warmup
                await asyncio.sleep(warmup)
                first = _rss_kib()
                began = time.monotonic()
                while not task.done():  # the footprint over the run, once a minute
                    await asyncio.wait({task}, timeout=60.0)
                    samples.append((time.monotonic() - began, _rss_kib()))
                await task
                return first, _rss_kib()

            first, last = asyncio.run(run())
            client.close()
    finally:
        stop.set()
        process.join(30)

    def pct(values: _Histogram, q: float) -> float:
        return values.percentile_ms(q)

    print(f"quotes {len(files.handled)} over {args.duration:.0f} s "
          f"({len(files.handled) / args.duration:,.0f}/s, 40 epics)")  # fmt: skip
    handled, durable = files.handled, files.durable
    print(f"send → handled: p50 {pct(handled, 50):7.1f} ms   p99 {pct(handled, 99):7.1f} ms")
    print(f"send → durable: p50 {pct(durable, 50):7.1f} ms   p99 {pct(durable, 99):7.1f} ms"
          f"   (Parquet rotation every {args.rotate} s)")  # fmt: skip
    if len(samples) > 2:
        trace = "  ".join(f"{t / 60:.0f}m:{kib / 1024:.1f}" for t, kib in samples)
        print(f"client RSS (MiB) by minute: {trace}")
    growth = (last - first) / first * 100 if first else 0.0
    print(f"client RSS: {first / 1024:.1f} MiB after warm-up → {last / 1024:.1f} MiB at the end "
          f"({growth:+.1f} %, {args.duration:.0f} s run; target < 10 % over 30 min)")  # fmt: skip


def rest_backfill(args: argparse.Namespace) -> None:
    process, stop, url = _start_simulator(0.25, 0, rate_limit=int(args.rate))
    try:
        with tempfile.TemporaryDirectory() as folder:
            engine = make_engine(f"sqlite:///{folder}/bench.sqlite")
            upgrade(engine)
            client = CapitalClient(url, "sim-api-key", "sim@example.com", "sim-password",
                                   rate_limit=args.rate)  # fmt: skip
            client.login()
            end = NOW.replace(hour=0)
            window = Window(end - timedelta(days=365), end)
            began, cpu = time.perf_counter(), time.process_time()
            report = backfill(client, engine, "BTCUSD", "MINUTE_5", window, now=NOW)
            wall = time.perf_counter() - began
            cpu = time.process_time() - cpu
            client.close()
            log = httpx.get(url + "/_sim/requests", params={"limit": "100000"}).json()["requests"]
            served = sum(r["ms"] for r in log if r["path"].startswith("/prices/")) / 1000
    finally:
        stop.set()
        process.join(30)
    bound = report.requests / args.rate
    print(f"one year of MINUTE_5 for BTCUSD: {report.bars} bars in {report.requests} requests")
    print(f"wall {wall:.2f} s; rate-limit bound {bound:.2f} s at {args.rate:g}/s; "
          f"ratio {wall / bound:.3f} (target <= 1.05)")  # fmt: skip
    print(f"the simulator spent {served:.2f} s answering /prices (its bar generation): "
          f"ratio to max(bound, that) {wall / max(bound, served):.3f}")  # fmt: skip
    print(f"the client used {cpu:.2f} s of CPU ({cpu / bound:.3f} of the bound); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks market")
    parser.add_argument("--only", choices=["throughput", "latency", "backfill"], default=None)
    parser.add_argument("--quotes", type=int, default=200_000)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--rotate", type=float, default=1.0)
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="latency: seconds before the first RSS reading (default 10)",
    )
    parser.add_argument("--rate", type=float, default=10.0)
    args = parser.parse_args(argv)
    jobs = {"throughput": throughput, "latency": latency, "backfill": rest_backfill}
    for name, job in jobs.items():
        if args.only in (None, name):
            print(f"--- {name} ---", flush=True)
            job(args)
    return 0
