"""Chart templates in the ledger and through the command line, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from ledger_etl.capital.client import CapitalClient
from ledger_etl.cli import main
from ledger_etl.ledger import schema as s
from ledger_etl.market import template_backfill
from ledger_etl.market.template_backfill import (
    BarStoreUnavailable,
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


def test_backfill_without_a_bar_store_prints_the_plan_and_says_so(
    market_sim: SimulatorServer, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(template_backfill, "BACKFILL_MODULE", "ledger_etl.market.no_such_store")
    env, runner = cli_env(market_sim, sqlite_engine), CliRunner()
    runner.invoke(main, ["templates", "import", "--offline", str(BOARD)], env=env)
    result = runner.invoke(main, ["templates", "backfill", "intraday-board"], env=env)
    assert result.exit_code == 1, result.output
    assert "BTCUSD           MINUTE" in result.output
    assert "intraday-board v1: 4 range(s)" in result.output
    assert "price-bar store is not available" in result.output
    market_sim.simulator.clock.advance(2)
    planned = runner.invoke(
        main, ["templates", "backfill", "intraday-board", "--plan-only"], env=env
    )
    assert planned.exit_code == 0 and "4 range(s)" in planned.output


def test_backfill_hands_every_range_to_the_bar_store(
    client: CapitalClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `backfill_bars` receives, through a bar store module written for the test (the
    engine is handed over untouched, so none is needed here)."""
    monkeypatch.delitem(sys.modules, "fake_bar_store", raising=False)
    package = tmp_path / "fake_bar_store"
    package.mkdir()
    (package / "__init__.py").write_text(
        "calls = []\n"
        "def backfill_bars(client, engine, *, epic, resolution, start, end):\n"
        "    calls.append((epic, resolution, start, end))\n"
        "    return len(calls)\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(template_backfill, "BACKFILL_MODULE", "fake_bar_store")
    document = load_template_file(BOARD).document
    plan = plan_backfill(document, document["instruments"]["epics"], NOW)
    assert run_backfill(client, None, plan) == [1, 2, 3, 4]  # type: ignore[arg-type]
    import fake_bar_store  # type: ignore[import-not-found]

    assert fake_bar_store.calls == [(r.epic, r.resolution, r.start, r.end) for r in plan]


def test_a_missing_bar_store_is_reported_not_guessed(
    client: CapitalClient, ledger_engine: Engine
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(template_backfill, "BACKFILL_MODULE", "ledger_etl.market.no_such_store")
        with pytest.raises(BarStoreUnavailable, match="nothing was fetched"):
            run_backfill(client, ledger_engine, [])


def test_cli_backfill_runs_every_planned_range_through_the_bar_store(
    market_sim: SimulatorServer, sqlite_engine: Engine, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.delitem(sys.modules, "cli_bar_store", raising=False)
    (tmp_path / "cli_bar_store.py").write_text(
        "def backfill_bars(client, engine, *, epic, resolution, start, end):\n"
        "    return f'{int((end - start).total_seconds())} s'\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(template_backfill, "BACKFILL_MODULE", "cli_bar_store")
    env, runner = cli_env(market_sim, sqlite_engine), CliRunner()
    runner.invoke(main, ["templates", "import", "--offline", str(BOARD)], env=env)
    done = runner.invoke(main, ["templates", "backfill", "intraday-board"], env=env)
    assert done.exit_code == 0, done.output
    # BTCUSD MINUTE: 240 bars + EMA(21) warm-up (the RSI's 15 is shorter) = 261 minutes.
    assert "done BTCUSD MINUTE: 15660 s" in done.output
    # HOUR: the longest chart at that resolution, 500 bars + EMA(55) = 555 hours, for both epics.
    assert "done GOLD HOUR: 1998000 s" in done.output
    assert "backfilled 4 range(s)" in done.output
    market_sim.simulator.clock.advance(2)
    text = BOARD.read_text(encoding="utf-8").replace("[BTCUSD, GOLD]", "[BTCUSD, GOLD, NOPE]")
    text = text.replace("name: intraday-board", "name: with-nope")
    runner.invoke(main, ["templates", "import", "--offline", str(write(tmp_path / "n.yaml", text))],
                  env=env)  # fmt: skip
    refused = runner.invoke(main, ["templates", "backfill", "with-nope"], env=env)
    assert refused.exit_code == 2 and "knows no market 'NOPE'" in refused.output
    assert "done " not in refused.output  # checked before any range was fetched
