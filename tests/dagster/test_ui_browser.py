"""An ad-hoc backfill from the Dagster UI, clicked through in a real browser (Debian's chromium
driven by Playwright): open the asset graph, pick the history assets, choose one account and one
month in the launch dialog, launch, follow the run on the runs page until it succeeds, and find
the statement's folder in the asset's metadata, a folder that exists on disk; once with a
SQLite ledger and once with a PostgreSQL one.

The webserver runs alone with Dagster's default run coordinator, so the run starts as soon as it
is launched: no daemon, and no schedule or sensor competing with it for the simulator (the
daemon's part, queued runs and backfills, is covered by test_ui_backfill.py). The simulator's
world starts on 2025-12-01 with few rows a day, so the run has little to fetch.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import httpx
import pytest

from ledger_etl.defs.history.partitions import ACCOUNTS
from ledger_etl.simulator import SimulatorServer
from ledger_etl.simulator.server import free_port
from tests.conftest import (
    API_KEY,
    IDENTIFIER,
    PASSWORD,
    database_url_of,
    make_server,
    make_test_engine,
)
from tests.integration.ledger_helpers import account_ids
from tests.service.conftest import ARTEFACTS, browser  # noqa: F401 - the chromium fixture

ROOT = Path(__file__).resolve().parents[2]
MONTH = "2025-12"
# The project's instance settings, with runs launched at once by the webserver itself.
INSTANCE = """
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
concurrency:
  pools:
    default_limit: 1
"""
RUN_DONE = re.compile(r"^(Success|Failure|Canceled)$")


@pytest.fixture(scope="module")
def small_sim() -> Iterator[SimulatorServer]:
    server = make_server(start=date(2025, 12, 1), rows_per_day=2.0, rate_limit_per_second=0)
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def webserver(
    request: pytest.FixtureRequest,
    small_sim: SimulatorServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict]:
    """The Dagster webserver on a ledger of each backend (an empty file / a fresh schema)."""
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text(INSTANCE)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(ACCOUNTS.name, account_ids(small_sim))
    data = tmp_path_factory.mktemp("data")
    ledger_url = database_url_of(make_test_engine(request.param, data, request))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAPITAL_", "LEDGER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        CAPITAL_API_URL=small_sim.url,
        CAPITAL_API_KEY=API_KEY,
        CAPITAL_IDENTIFIER=IDENTIFIER,
        CAPITAL_PASSWORD=PASSWORD,
        LEDGER_DATABASE_URL=ledger_url,
        LEDGER_EXPORT_DIR=str(data / "exports"),
    )
    bin_dir = Path(sys.executable).parent
    log_path = data / "dagster-webserver.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1",
         "-p", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                query = {"query": "{ version }"}
                if httpx.post(url + "/graphql", json=query, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "the Dagster webserver did not start in 180 s"
            time.sleep(1)
        yield {"url": url, "exports": data / "exports", "log": log_path}
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


@pytest.fixture
def ui_page(browser) -> Iterator[object]:  # noqa: F811 - the imported fixture
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    # Dagster's first-visit newsletter dialog, dismissed as a returning user has it.
    context.add_init_script("window.localStorage.setItem('communityNux', '\"1\"')")
    tab = context.new_page()
    tab.set_default_timeout(60_000)  # the UI loads the code location's definitions slowly
    yield tab
    context.close()


def _screenshot_on_failure(page, name: str) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_materialize_one_month_of_one_account_from_the_asset_graph(
    ui_page, webserver: dict, small_sim: SimulatorServer
) -> None:
    page = ui_page
    account = account_ids(small_sim)[-1]  # of two: the dialog must pick the right one
    expected = webserver["exports"] / account / MONTH / "v1"
    try:
        _launch_from_the_asset_graph(page, webserver["url"], account)
        _wait_for_success_on_the_runs_page(page, account)
        folder = _statement_folder_in_the_metadata(page, account)
        assert Path(folder) == expected
        assert (expected / "manifest.json").is_file() and (expected / "statement.csv").is_file()
    except BaseException:
        _screenshot_on_failure(page, "test_ui_browser")
        print(webserver["log"].read_text()[-3000:])
        raise
    # Only what was asked for ran: no other account, no other month.
    exports = webserver["exports"]
    versions = [p.relative_to(exports) for p in exports.glob("*/*/v*") if p.is_dir()]
    assert versions == [Path(account, MONTH, "v1")]


def _launch_from_the_asset_graph(page, url: str, account: str) -> None:
    page.goto(url + "/")
    page.get_by_role("link", name="Lineage").click()  # the global asset graph
    page.locator(".CodeMirror").first.click()  # "Search and filter assets"
    page.keyboard.type('+key:"monthly_statement"')  # the statement and everything upstream
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Materialize all").click()
    dialog = page.get_by_role("dialog")
    assert "Launch runs to materialize 4 assets" in dialog.inner_text()
    # Once the partition sets have loaded, the months are a range field and the accounts (a
    # dynamic dimension) a drop-down list.
    month = dialog.get_by_placeholder("ex: 2025-01")
    month.wait_for()
    dialog.get_by_text("Select a partition or create one").click()
    page.get_by_role("menuitem", name=account).click()
    page.keyboard.press("Escape")
    month.fill(MONTH)
    month.press("Enter")
    page.get_by_text("1 partition", exact=True).wait_for()
    dialog.get_by_role("button", name="Launch 1 run").click()
    dialog.wait_for(state="detached")


def _wait_for_success_on_the_runs_page(page, account: str) -> None:
    page.get_by_role("link", name="Runs").click()
    cell = page.locator("div[class*=VirtualizedTable_cellBox]", has_text=f"{account}|{MONTH}")
    cell.locator("a[href^='/runs/']").first.click()  # the run's own page
    status = page.get_by_text(RUN_DONE)
    status.first.wait_for(timeout=600_000)  # the status tag updates live
    assert status.first.inner_text() == "Success"


def _statement_folder_in_the_metadata(page, account: str) -> str:
    page.get_by_role("link", name="Catalog").click()
    page.get_by_role("link", name="monthly_statement").first.click()
    page.get_by_role("tab", name="Events").click()  # the latest materialization, selected
    # The `folder` entry of its metadata: a path ending in the account, the month and a version.
    shown = page.get_by_text(re.compile(rf"^/\S+/{re.escape(account)}/{MONTH}/v[0-9]+$"))
    shown.first.wait_for()
    return shown.first.inner_text().strip()
