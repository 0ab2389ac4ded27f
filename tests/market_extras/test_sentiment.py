"""Client sentiment over HTTP into the ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from ledger_etl.capital.client import CapitalClient
from ledger_etl.capital.sentiment import ClientSentiment, SentimentPoll, fetch_client_sentiment
from ledger_etl.cli import main
from ledger_etl.ledger import schema as s
from ledger_etl.ledger.db import upgrade
from ledger_etl.market.sentiment import (
    latest_sentiment,
    poll_sentiment,
    record_sentiment,
    sentiment_series,
)
from ledger_etl.simulator import SimulatorServer
from ledger_etl.simulator.sentiment import long_share
from tests.market_extras.conftest import cli_env

EPICS = ["GOLD", "EURUSD", "BTCUSD", "US500"]


def _count(engine: Engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_series_grows_with_time_never_with_repeats(
    market_sim: SimulatorServer, client: CapitalClient, ledger_engine: Engine
) -> None:
    first = poll_sentiment(client, ledger_engine, EPICS)
    assert (first.write.inserted, first.unknown, first.problems) == (4, [], 0)
    again = poll_sentiment(client, ledger_engine, EPICS)  # the clock is frozen: same instant
    assert (again.write.inserted, again.write.unchanged) == (0, 4)
    assert _count(ledger_engine, s.sentiment_observations) == 4
    assert _count(ledger_engine, s.sentiment_polls) == 2  # every poll is recorded

    market_sim.simulator.clock.advance(3 * 3600)
    later = poll_sentiment(client, ledger_engine, EPICS)
    assert later.write.inserted == 4
    assert later.observed_at == first.observed_at + timedelta(hours=3)
    series = sentiment_series(ledger_engine, ["GOLD"])
    assert [p.observed_at for p in series] == [first.observed_at, later.observed_at]
    seed = market_sim.simulator.config.world.seed
    for point in sentiment_series(ledger_engine):
        truth = long_share(seed, point.epic, int(point.observed_at.timestamp()))
        assert point.long_pct == truth  # exact, from the wire to the row
        assert point.long_pct + point.short_pct == Decimal(100)
        assert (point.flags, point.revision) == ("", 1)
    assert series[0].long_pct != series[1].long_pct  # sentiment moved over three hours
    assert {p.epic: p.observed_at for p in latest_sentiment(ledger_engine)} == {
        e: later.observed_at for e in EPICS
    }


def test_unknown_markets_are_named_and_the_others_recorded(
    client: CapitalClient, ledger_engine: Engine
) -> None:
    report = poll_sentiment(client, ledger_engine, ["GOLD", "NOPE", "SILVER", "ALSO_NOPE"])
    assert report.unknown == ["NOPE", "ALSO_NOPE"]
    assert not report.ok
    assert {p.epic for p in sentiment_series(ledger_engine)} == {"GOLD", "SILVER"}
    with ledger_engine.connect() as conn:
        poll = conn.execute(select(s.sentiment_polls)).one()
    assert (poll.asked, poll.observed, poll.unknown) == (4, 2, ["NOPE", "ALSO_NOPE"])


def test_batches_respect_the_size(client: CapitalClient) -> None:
    epics = ["GOLD", "SILVER", "EURUSD", "BTCUSD", "US500"]
    poll = fetch_client_sentiment(client, epics, batch_size=2)
    assert poll.requests == 3
    assert [p.market_id for p in poll.sentiments] == epics


def test_a_revised_answer_for_the_same_instant_is_counted(
    client: CapitalClient, ledger_engine: Engine
) -> None:
    upgrade(ledger_engine)
    poll = fetch_client_sentiment(client, ["GOLD"])
    assert record_sentiment(ledger_engine, poll, "run-a").inserted == 1
    revised = ClientSentiment.model_validate(
        {"marketId": "GOLD", "longPositionPercentage": Decimal("60.5"),
         "shortPositionPercentage": Decimal("39.6")}
    )  # fmt: skip
    write = record_sentiment(ledger_engine, SentimentPoll(poll.observed_at, [revised]), "run-b")
    assert (write.inserted, write.revised) == (0, 1)
    (point,) = sentiment_series(ledger_engine)
    assert (point.long_pct, point.revision, point.flags) == (Decimal("60.5"), 2, "not_hundred")


def test_cli_sentiment(market_sim: SimulatorServer, sqlite_engine: Engine) -> None:
    env = cli_env(market_sim, sqlite_engine)
    runner = CliRunner()
    done = runner.invoke(main, ["sentiment", "--epics", "GOLD,SILVER"], env=env)
    assert done.exit_code == 0, done.output
    assert "GOLD" in done.output and "2 new" in done.output
    market_sim.simulator.clock.advance(2)  # each command logs in: one login a second
    unknown = runner.invoke(main, ["sentiment", "--epics", "GOLD,NOPE"], env=env)
    assert unknown.exit_code == 2, unknown.output
    assert "'NOPE'" in unknown.output and "error.not-found.epic" in unknown.output
    bad = runner.invoke(main, ["sentiment", "--epics", " , "], env=env)
    assert bad.exit_code == 2 and "no epics" in bad.output
    # Without epics: the members of every watchlist (read first, as the ledger holds none).
    market_sim.simulator.clock.advance(2)
    members = runner.invoke(main, ["sentiment"], env=env)
    assert members.exit_code == 0, members.output
    for epic in ("SILVER", "NATURALGAS", "GOLD", "EURUSD", "US500", "BTCUSD"):
        assert epic in members.output
