"""Sentiment, watchlist and chart-template recording on SQLite: figures, not timed tests.

Sentiment: `--polls` polls of `--markets` markets recorded through `record_sentiment`
(observations per second), then the same polls again (the idempotent path: nothing new).
Watchlists: `--lists` lists of 40 members, `--polls` polls with one member swapped per list and
poll (membership changes per second). Templates: validations and content hashes per second of
the shipped example.

    python -m benchmarks market_extras
    python -m benchmarks market_extras --markets 200 --polls 100
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from ledger_etl.capital.sentiment import ClientSentiment, SentimentPoll
from ledger_etl.capital.watchlists import ObservedWatchlist, WatchlistsSnapshot, WatchlistSummary
from ledger_etl.ledger.db import make_engine, upgrade
from ledger_etl.market.sentiment import record_sentiment
from ledger_etl.market.templates import load_template_file, validate_template
from ledger_etl.market.watchlists import record_watchlists

START = datetime(2026, 1, 15, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parents[1] / "docs/examples/chart-templates/intraday-board.yaml"


def _poll(markets: int, n: int) -> SentimentPoll:
    rows = []
    for m in range(markets):
        long = Decimal(5000 + (m * 37 + n * 11) % 4000).scaleb(-2)
        rows.append(ClientSentiment.model_validate({
            "marketId": f"EPIC{m:04d}", "longPositionPercentage": long,
            "shortPositionPercentage": Decimal(100) - long,
        }))  # fmt: skip
    return SentimentPoll(START + timedelta(minutes=15 * n), rows)


def sentiment(engine, markets: int, polls: int) -> None:
    made = [_poll(markets, n) for n in range(polls)]
    began = time.perf_counter()
    for poll in made:
        record_sentiment(engine, poll, "bench")
    first = time.perf_counter() - began
    began = time.perf_counter()
    for poll in made:
        assert record_sentiment(engine, poll, "bench").inserted == 0
    again = time.perf_counter() - began
    total = markets * polls
    print(f"sentiment: {total} observations in {first:.2f} s = {total / first:,.0f}/s; "
          f"repeated (nothing new) {again:.2f} s = {total / again:,.0f}/s")  # fmt: skip


def watchlists(engine, lists: int, polls: int) -> None:
    def snapshot(n: int) -> WatchlistsSnapshot:
        observed = []
        for k in range(lists):
            members = tuple(f"EPIC{(k + i + (n if i == 0 else 0)) % 500:04d}" for i in range(40))
            summary = WatchlistSummary.model_validate({"id": str(1000 + k), "name": f"list {k}"})
            observed.append(ObservedWatchlist(summary, tuple(dict.fromkeys(members))))
        return WatchlistsSnapshot(START + timedelta(minutes=n), observed)

    made = [snapshot(n) for n in range(polls)]
    began = time.perf_counter()
    changes = sum(len(record_watchlists(engine, s, "bench").added) for s in made)
    elapsed = time.perf_counter() - began
    print(f"watchlists: {polls} polls of {lists} lists x 40 members in {elapsed:.2f} s "
          f"({polls / elapsed:,.1f} polls/s, {changes} joins recorded)")  # fmt: skip


def templates(rounds: int) -> None:
    document = load_template_file(EXAMPLE).document
    began = time.perf_counter()
    for _ in range(rounds):
        validate_template(document)
    elapsed = time.perf_counter() - began
    print(f"templates: {rounds} validations + hashes in {elapsed:.2f} s "
          f"({rounds / elapsed:,.0f}/s)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks market_extras")
    parser.add_argument("--markets", type=int, default=100)
    parser.add_argument("--polls", type=int, default=50)
    parser.add_argument("--lists", type=int, default=10)
    parser.add_argument("--template-rounds", type=int, default=200)
    args, _ = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'ledger.sqlite'}")
        upgrade(engine)
        sentiment(engine, args.markets, args.polls)
        watchlists(engine, args.lists, args.polls)
        engine.dispose()
    templates(args.template_rounds)
    return 0
