"""Chart templates in the ledger and through the command line, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from ledger_etl.capital.client import CapitalClient
from ledger_etl.cli import main
from ledger_etl.intervals import Window
from ledger_etl.ledger import schema as s
from ledger_etl.ledger.db import upgrade
from ledger_etl.market.bars import read_bars
from ledger_etl.market.template_backfill import (
    UnknownEpics,
    check_epics,
    run_backfill,
    template_universe,
)
from ledger_etl.market.template_plan import plan_backfill
from ledger_etl.market.template_store import (
    TemplateNotFound,
    get_template,
    import_template,
    list_templates,
    template_versions,
)
from ledger_etl.market.templates import load_template_file, render_template
from ledger_etl.market.watchlists import poll_watchlists
from ledger_etl.simulator import SimulatorServer
from tests.market_extras.conftest import cli_env, write
from tests.market_extras.test_template_schema import EXAMPLES, NOW

BOARD = EXAMPLES / "intraday-board.yaml"
DAILY = EXAMPLES / "watchlist-daily.json"


def _versions(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(s.chart_template_versions)
        ).scalar_one()  # fmt: skip


def test_import_is_idempotent_by_content_hash(ledger_engine: Engine, tmp_path: Path) -> None:
    first = import_template(ledger_engine, load_template_file(BOARD), str(BOARD))
    assert (first.version, first.created) == (1, True)
    again = import_template(ledger_engine, load_template_file(BOARD), str(BOARD))
    assert (again.version, again.created, again.sha256) == (1, False, first.sha256)
    # The same content as JSON, keys in another order: still the same version.
    stored = get_template(ledger_engine, "intraday-board")
    as_json = write(tmp_path / "board.json", render_template(stored.document, "json"))
    assert import_template(ledger_engine, load_template_file(as_json), None).created is False
    assert _versions(ledger_engine) == 1

    changed = BOARD.read_text(encoding="utf-8").replace("lookback_bars: 240", "lookback_bars: 480")
    second = import_template(
        ledger_engine, load_template_file(write(tmp_path / "b.yaml", changed)), "b.yaml"
    )
    assert (second.version, second.created) == (2, True)
    assert get_template(ledger_engine, "intraday-board").document["lookback_bars"] == 480
    assert get_template(ledger_engine, "intraday-board", 1).document["lookback_bars"] == 240
    # Back to the first content: a change from the current version, so version 3.
    third = import_template(ledger_engine, load_template_file(BOARD), str(BOARD))
    assert (third.version, third.sha256) == (3, first.sha256)
    assert [v for v, _, _ in template_versions(ledger_engine, "intraday-board")] == [1, 2, 3]
    (summary,) = list_templates(ledger_engine)
    assert (summary.name, summary.current_version, summary.versions) == ("intraday-board", 3, 3)
    with pytest.raises(TemplateNotFound, match="has no version 9"):
        get_template(ledger_engine, "intraday-board", 9)
    with pytest.raises(TemplateNotFound, match="no template 'nope'; the ledger holds 'intraday"):
        get_template(ledger_engine, "nope")


def test_a_stored_template_that_no_longer_matches_its_hash_is_refused(
    ledger_engine: Engine,
) -> None:
    import_template(ledger_engine, load_template_file(BOARD), None)
    with ledger_engine.begin() as conn:
        conn.execute(s.chart_template_versions.update().values(content_sha256="0" * 64))
    with pytest.raises(TemplateNotFound, match="does not match its recorded hash"):
        get_template(ledger_engine, "intraday-board")


def test_cli_import_list_show_and_reimport_of_the_export(
    market_sim: SimulatorServer, sqlite_engine: Engine, tmp_path: Path
) -> None:
    env, runner = cli_env(market_sim, sqlite_engine), CliRunner()
    imported = runner.invoke(main, ["templates", "import", str(BOARD)], env=env)
    assert imported.exit_code == 0, imported.output
    assert "intraday-board\tv1\tnew version" in imported.output
    market_sim.simulator.clock.advance(2)  # one login a second
    repeated = runner.invoke(main, ["templates", "import", "--offline", str(BOARD)], env=env)
    assert "intraday-board\tv1\tunchanged" in repeated.output
    listed = runner.invoke(main, ["templates", "list"], env=env)
    assert listed.exit_code == 0 and "intraday-board" in listed.output and "v1" in listed.output
    out = tmp_path / "export.json"
    shown = runner.invoke(
        main,
        ["templates", "show", "intraday-board", "--format", "json", "--out", str(out)],
        env=env,
    )
    assert shown.exit_code == 0, shown.output
    assert json.loads(out.read_text(encoding="utf-8"))["name"] == "intraday-board"
    back = runner.invoke(main, ["templates", "import", "--offline", str(out)], env=env)
    assert "unchanged" in back.output
    printed = runner.invoke(main, ["templates", "show", "intraday-board"], env=env)
    assert printed.exit_code == 0 and "name: intraday-board" in printed.output
    schema = runner.invoke(main, ["templates", "schema"], env=env)
    assert json.loads(schema.output)["title"] == "ledger_etl chart template"


def test_cli_invalid_template_names_the_field_and_stores_nothing(
    market_sim: SimulatorServer, sqlite_engine: Engine, tmp_path: Path
) -> None:
    env, runner = cli_env(market_sim, sqlite_engine), CliRunner()
    text = BOARD.read_text(encoding="utf-8").replace("resolution: HOUR,", "resolution: HOURLY,")
    bad = write(tmp_path / "bad.yaml", text)
    result = runner.invoke(main, ["templates", "import", str(BOARD), str(bad)], env=env)
    assert result.exit_code == 2
    assert "layout.charts[2].resolution: 'HOURLY' is not one of" in result.output
    assert "layout.charts[3].resolution" in result.output
    assert "bad.yaml" in result.output
    assert list_templates(sqlite_engine) == []  # the good file was not stored either


def test_cli_unknown_epic_is_a_clear_error(
    market_sim: SimulatorServer, sqlite_engine: Engine, tmp_path: Path
) -> None:
    env, runner = cli_env(market_sim, sqlite_engine), CliRunner()
    text = BOARD.read_text(encoding="utf-8").replace("[BTCUSD, GOLD]", "[BTCUSD, GOLD, NOPE]")
    nope = write(tmp_path / "nope.yaml", text)
    result = runner.invoke(main, ["templates", "import", str(nope)], env=env)
    assert result.exit_code == 2, result.output
    assert "knows no market 'NOPE'" in result.output and "instruments.epics" in result.output
    assert list_templates(sqlite_engine) == []


def test_unknown_epics_are_found_among_many(client: CapitalClient) -> None:
    epics = ["GOLD", "NOPE", "SILVER", "EURUSD", "BAD1", "US500"]
    with pytest.raises(UnknownEpics) as caught:
        check_epics(client, epics, "template t")
    assert caught.value.epics == ["NOPE", "BAD1"]
    check_epics(client, ["GOLD", "SILVER"], "template t")  # no error


def test_watchlist_template_resolves_its_universe(
    client: CapitalClient, ledger_engine: Engine
) -> None:
    import_template(ledger_engine, load_template_file(DAILY), None)
    document = get_template(ledger_engine, "watchlist-daily").document
    with pytest.raises(Exception, match="no watchlist 'watchlist1' in the ledger"):
        template_universe(ledger_engine, document)
    poll_watchlists(client, ledger_engine)
    epics = template_universe(ledger_engine, document)
    assert epics == ["GOLD", "EURUSD", "US500", "BTCUSD"]
    plan = plan_backfill(document, epics, NOW)
    assert {(r.epic, r.resolution) for r in plan} == {
        (e, r) for e in epics for r in ("DAY", "WEEK")
    }
    assert {r.bars for r in plan if r.resolution == "DAY"} == {500}  # 300 + SMA(200)


def test_backfill_fills_the_bar_store_with_every_planned_range(
    market_sim: SimulatorServer, client: CapitalClient, ledger_engine: Engine
) -> None:
    """Each planned range lands in `price_bars`, bid and ask equal to the simulator's truth."""
    upgrade(ledger_engine)
    document = load_template_file(BOARD).document
    plan = plan_backfill(document, document["instruments"]["epics"], client.server_time())
    reports = run_backfill(client, ledger_engine, plan)
    assert len(reports) == len(plan) and all(not r.rejected for r in reports)
    for item, report in zip(plan, reports, strict=True):
        truth = httpx.get(
            market_sim.url + "/_sim/truth/bars",
            params={"epic": item.epic, "resolution": item.resolution,
                    "from": item.start.isoformat(), "to": item.end.isoformat()},
            timeout=30,
        ).json()["bars"]  # fmt: skip
        stored = read_bars(ledger_engine, item.epic, item.resolution, Window(item.start, item.end))
        assert truth and report.bars >= len(truth)
        assert [row["t"] for row in stored] == [datetime.fromisoformat(b["t"]) for b in truth]
        for row, bar in zip(stored, truth, strict=True):
            for side in ("bid", "ask"):
                assert [row[f"{side}_{k}"] for k in "ohlc"] == [
                    Decimal(bar[side][k]) for k in "ohlc"
                ]
    again = run_backfill(client, ledger_engine, plan)  # the store's gaps only: nothing left
    assert [r.requests for r in again] == [0] * len(plan)


def test_cli_backfill_runs_every_planned_range_and_refuses_unknown_epics_first(
    market_sim: SimulatorServer, sqlite_engine: Engine, tmp_path: Path
) -> None:
    env, runner = cli_env(market_sim, sqlite_engine), CliRunner()
    runner.invoke(main, ["templates", "import", "--offline", str(BOARD)], env=env)
    planned = runner.invoke(
        main, ["templates", "backfill", "intraday-board", "--plan-only"], env=env
    )
    assert planned.exit_code == 0 and "intraday-board v1: 4 range(s)" in planned.output
    assert "BTCUSD           MINUTE" in planned.output
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.price_bars)).scalar_one() == 0
    done = runner.invoke(main, ["templates", "backfill", "intraday-board"], env=env)
    assert done.exit_code == 0, done.output
    assert "done BTCUSD MINUTE: " in done.output and "done GOLD HOUR: " in done.output
    assert "backfilled 4 range(s)" in done.output
    with sqlite_engine.connect() as conn:
        stored = conn.execute(
            select(s.price_bars.c.epic, s.price_bars.c.resolution).distinct()
        ).all()
    assert set(stored) == {(e, r) for e in ("BTCUSD", "GOLD") for r in ("MINUTE", "HOUR")}
    market_sim.simulator.clock.advance(2)
    text = BOARD.read_text(encoding="utf-8").replace("[BTCUSD, GOLD]", "[BTCUSD, GOLD, NOPE]")
    text = text.replace("name: intraday-board", "name: with-nope")
    runner.invoke(main, ["templates", "import", "--offline", str(write(tmp_path / "n.yaml", text))],
                  env=env)  # fmt: skip
    refused = runner.invoke(main, ["templates", "backfill", "with-nope"], env=env)
    assert refused.exit_code == 2 and "knows no market 'NOPE'" in refused.output
    assert "done " not in refused.output  # checked before any range was fetched
