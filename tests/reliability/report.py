"""Run the whole reliability matrix (slow cases included) and render docs/reliability.md.

    python -m tests.reliability.report        (or: make reliability)

Each test appends its measured figures to a results file (`LEDGER_RELIABILITY_RESULTS`); pytest's
JUnit XML gives each case's outcome. Both go into the table, with the date and this command. The
tests of every found-and-fixed row run too (those outside tests/reliability are added to the
run), and each row shows its outcome.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from tests.reliability.harness import RESULTS_ENV, ROOT
from tests.reliability.matrix import BACKENDS, BY_ID, CASES

COMMAND = "python -m tests.reliability.report"
DOCUMENT = ROOT / "docs" / "reliability.md"

# Each row: the problem, where it was fixed, and the tests (pytest node ids, a
# parametrized test by its name) that reproduce it; the report runs them and shows the outcome.
FIXED: list[tuple[str, str, tuple[str, ...]]] = [
    ('`ledger-etl statement` into a read-only or full export folder ended in a Python '
     'traceback; it now exits 1 with one line naming the folder and the OS error (nothing is '
     'published).',
     'ledger_etl/cli.py',
     (
      'tests/reliability/test_exports.py::'
      'test_read_only_export_folder_then_fixed',
      'tests/reliability/test_exports.py::'
      'test_export_out_of_space_then_fixed',
     )),
    ('Flagged rows (unknown type, cleaned note or instrument, unknown activity enums) had no '
     "count in the run metadata; `flagged` is now in each sync's run summary and in the raw "
     "assets' Dagster metadata.",
     'ledger_etl/ledger/ingest.py, ledger_etl/defs/history/assets.py',
     ('tests/reliability/test_bad_input.py',)),
    ('Test harness: `database_url_of` (tests/conftest.py) kept PostgreSQL URLs by '
     '`id(engine)`; once a PostgreSQL engine was collected, a new SQLite engine could get its '
     'id and CLI subprocesses wrote to the dropped schema instead of the SQLite file. Entries '
     'are now removed with their engine.',
     'tests/conftest.py',
     ('tests/reliability/test_matrix.py::test_api_faults_through_the_cli',)),
    ('After a re-login, requests of other threads could go out on the fresh session before PUT'
     " /session had restored the target account, reading the preferred account's history; "
     'tokens are now handed out under the session lock.',
     'ledger_etl/capital/auth.py',
     (
      'tests/unit/test_capital_relogin.py::'
      'test_no_request_uses_a_fresh_session_before_its_account_is_restored',
     )),
    ('A session expiring just before the account restore (`PUT /session`) aborted the whole '
     'fetch with AuthenticationError; the restore now logs in again (up to 3 times).',
     'ledger_etl/capital/auth.py',
     (
      'tests/unit/test_capital_relogin.py::'
      'test_a_fresh_session_that_dies_before_the_account_restore_logs_in_again',
     )),
    ('Replays after a session expiry spent the transient-retry budget, so a window could fail '
     'after a few expiries and 503s; the budget now counts failed answers only.',
     'ledger_etl/capital/client.py',
     (
      'tests/unit/test_capital_relogin.py::'
      'test_a_replay_after_a_relogin_does_not_spend_the_retry_budget',
     )),
    ('An error answer whose `errorCode` echoed the request put the CST, the security token, '
     'the API key or the password into exception messages, log lines, `fetch_log.error` and '
     "the CLI's output; text the server wrote is now masked of every credential and every "
     'token the session has held (raw, JSON-escaped and percent-encoded) and cut at 500 '
     'characters.',
     'ledger_etl/capital/errors.py, ledger_etl/capital/auth.py, ledger_etl/capital/client.py',
     ('tests/reliability/test_echoed_secrets.py',)),
    ('A publish killed (or out of space) after `v<N>/` was renamed into place but before '
     '`versions.json` was rewritten left the index stale for good: the next `statement` said '
     'unchanged and kept it, and out of space the CLI said nothing was published. The index is'
     ' now derived from the folders and rewritten by every publish and by `verify --repair`; '
     'the error names the version published.',
     'ledger_etl/statements/export.py, versions.py, repair.py',
     (
      'tests/reliability/test_published_folders.py::'
      'test_a_publish_killed_before_the_index_write_heals',
      'tests/reliability/test_published_folders.py::'
      'test_out_of_space_at_the_index_says_what_was_published',
     )),
    ('`verify` accepted a deleted `versions.json`, a manifest whose status or reconciliation '
     'disagreed with statement.json, swapped version folders and swapped CSV amounts with '
     'equal sums; it now compares every fact two files state, and the formats row by row.',
     'ledger_etl/statements/verify.py, crosscheck.py',
     (
      'tests/reliability/test_published_folders.py::'
      'test_a_damaged_month_heals_without_losing_evidence',
     )),
    ('A truncated manifest or a statement.json symlink made every later `statement` end in a '
     'JSONDecodeError traceback; such a version is now damaged: recorded in versions.json, '
     'kept unchanged, never current, and the next publish writes a new version beside it.',
     'ledger_etl/statements/versions.py, export.py',
     (
      'tests/reliability/test_published_folders.py::'
      'test_a_damaged_month_heals_without_losing_evidence',
     )),
    ('The publish lock followed a symlink (creating or chmodding a file outside the export '
     'dir); files in the tree are now opened with O_NOFOLLOW and links below the export dir '
     'are refused with an error naming them.',
     'ledger_etl/statements/layout.py, paths.py',
     (
      'tests/reliability/test_published_folders.py::'
      'test_a_damaged_month_heals_without_losing_evidence',
     )),
    ('A hostile row (a lone surrogate, a NUL, an amount with a huge exponent, 92.2 billion or '
     'more on SQLite, more than 28 significant digits on PostgreSQL, a text longer than its '
     'column) ended the sync with a traceback or was rounded; each is now quarantined with its'
     ' reason (or stored exactly), every other row is stored, and both backends store the '
     'same.',
     'ledger_etl/ledger/normalize.py, schema.py, store.py',
     (
      'tests/reliability/test_hostile_rows.py::'
      'test_one_hostile_row_is_quarantined_and_the_rest_stored_alike',
      'tests/reliability/test_fuzz_rows.py',
     )),
    ("A foreign-currency entry was summed into its account's balance; it is now quarantined "
     '(`currency_mismatch`), kept out of every balance and listed on the statement.',
     'ledger_etl/ledger/normalize.py, ledger_etl/statements/query.py',
     (
      'tests/reliability/test_hostile_rows.py::'
      'test_foreign_currency_row_is_listed_on_the_statement_not_in_its_balance',
     )),
    ('A 4xx/5xx (or 200) body of 100,000 nested `[` ended in a RecursionError traceback; it '
     'now fails its window (a gap a later sync fills).',
     'ledger_etl/capital/models.py, errors.py',
     ('tests/reliability/test_hostile_bodies.py',)),
    ('A hostile balance in `GET /accounts` (not a number, NaN, a huge exponent, nine decimals,'
     ' an object, a list, missing) failed the whole sync; the balance observation is now '
     'skipped, its block quarantined (`balance_missing` / `balance_unusable`), the reason '
     'reported by the sync, the history stored, and the statement says why it is UNVERIFIED.',
     'ledger_etl/capital/models.py, ledger_etl/ledger/ingest.py, ledger_etl/sync.py, '
     'ledger_etl/statements/query.py, build.py',
     ('tests/reliability/test_hostile_balances.py',)),
    ('Bytes that are not UTF-8, or a raw control character inside a JSON string, in a history '
     'body failed the whole window (a gap on every re-run); a history body is now decoded '
     'leniently and only the row is affected: quarantined (`text_invalid_utf8`, `text_nul`) or'
     ' stored with its raw text re-encoded as valid JSON.',
     'ledger_etl/capital/history.py, models.py, client.py',
     (
      'tests/reliability/test_hostile_rows.py::'
      'test_one_hostile_row_is_quarantined_and_the_rest_stored_alike',
     )),
    ('A rebuild quarantined an already-stored foreign-currency entry but left it in the '
     'ledger, still summed; the entry now leaves the ledger (its last version kept in '
     '`entry_history`, its raw row in quarantine).',
     'ledger_etl/ledger/rebuild.py',
     ('tests/integration/test_ledger_rebuild.py',)),
    ('`statement --month 9999-12`, a year-one sync, an unreachable PostgreSQL, full-width '
     'digits, a SQLite database locked by another process beyond the busy timeout and a '
     'read-only SQLite database ended in tracebacks, were accepted or gave no hint; each is '
     'now one clear line with its exit status (4 for the database, with what to do), and the '
     'SQLite busy timeout is a setting (`LEDGER_SQLITE_BUSY_TIMEOUT`).',
     'ledger_etl/cli.py, sync.py, monthly.py, ledger/db.py, settings.py',
     ('tests/integration/test_cli_errors.py',)),
    ('A sync that re-fetched a stored transaction whose new version is rejected (a foreign '
     'currency, a huge or unparseable amount, a NUL) quarantined the new version but kept the '
     'old entry in the ledger; the sync now removes it as a rebuild does (its last version kept'
     ' in `entry_history`), and never for a reference that cannot be a key.',
     'ledger_etl/ledger/ingest.py, store.py',
     ('tests/reliability/test_refetch_rejected.py',)),
    ('The first login to a simulator with a long, heavy history generated the whole history on '
     'the request path (51 s at 400 rows a day from 2025-01-01). Each day\'s money totals are '
     'now drawn first and its rows settled to them, so a balance needs no row generated: a '
     'login at 5,000 rows a day over two years builds no whole day (`python -m benchmarks '
     'simulator` prints its time).',
     'ledger_etl/simulator/balances.py, events.py, world.py',
     ('tests/simulator/test_balances.py',)),
]  # fmt: skip

NOTES = [
    "A history answer silently capped below the client's split threshold (1,000 rows by default, "
    "`CAPITAL_SPLIT_THRESHOLD`) cannot be detected in the answer: no cap is documented, so a full "
    "window is the only signal. The `truncated_windows` case therefore caps at the threshold the "
    "client uses; a cap below it is caught by the statement's reconciliation (DIFFERENCE, "
    "`tests/dagster/test_faults.py::test_a_silent_cap_below_the_split_threshold_is_caught_by_the_"
    "reconciliation`).",
    "The client re-logs in once per expired session, and again only for a session the API had "
    "accepted before; a session refused on its very first request ends the fetch (by design, so "
    "a broken login cannot loop). Expiry faults are therefore spaced (every 10th history "
    "request, every 40th request in the Dagster case).",
    "Right-to-left override characters in notes are kept as text; the rows carrying them are "
    "flagged `note_cleaned` (bell, NUL and other C0/C1 controls are stripped).",
    "`pg_terminate_backend` is PostgreSQL-only; on SQLite the equivalent loss of the writer is "
    "the SIGKILL cases.",
]


def _params(name: str) -> tuple[str, str] | None:
    if "[" not in name:
        return None
    # A stacked parametrization adds its own parts (`lock_links_dir-published_tree_damage-
    # sqlite`): the case is the part followed by a backend, wherever it stands.
    parts = name[name.index("[") + 1 : name.rindex("]")].split("-")
    for case, backend in pairwise(parts):
        if case in BY_ID and backend in BACKENDS:
            return case, backend
    return None


def outcomes(junit: Path) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for testcase in ET.parse(junit).getroot().iter("testcase"):
        key = _params(testcase.get("name", ""))
        if key is None:
            continue
        if testcase.find("failure") is not None or testcase.find("error") is not None:
            found[key] = "FAIL"
        elif testcase.find("skipped") is not None:
            found[key] = "skipped"
        else:
            found.setdefault(key, "pass")
    return found


def node_outcomes(junit: Path) -> dict[str, str]:
    """Every test case's outcome by pytest node id (`path.py::name[params]`)."""
    found: dict[str, str] = {}
    for testcase in ET.parse(junit).getroot().iter("testcase"):
        module, name = testcase.get("classname", ""), testcase.get("name", "")
        node = module.replace(".", "/") + ".py::" + name
        failed = testcase.find("failure") is not None or testcase.find("error") is not None
        skipped = testcase.find("skipped") is not None
        found[node] = "FAIL" if failed else ("skipped" if skipped else "pass")
    return found


def fixed_outcome(tests: tuple[str, ...], nodes: dict[str, str]) -> str:
    """`pass (N tests)` when every named test ran and none failed (a parametrized test counts
    each case), else what went wrong."""
    counted = 0
    for test in tests:
        mine = [
            state
            for node, state in nodes.items()
            if node == test or node.startswith((test + "[", test + "::"))
        ]
        ran = [state for state in mine if state != "skipped"]
        if "FAIL" in ran:
            return "**FAIL**"
        if not ran:
            return "**not run**"
        counted += len(ran)
    return f"**pass** ({counted} tests)"


def extra_tests() -> list[str]:
    """The found-and-fixed tests outside tests/reliability, which the report runs too."""
    return sorted({t for _, _, tests in FIXED for t in tests if not t.startswith("tests/reliab")})


def _figures(line: dict[str, Any]) -> str:
    shown = []
    for name, label in (("rows_compared", "rows compared"), ("retries", "retries"),
                        ("relogins", "re-logins"), ("faults_fired", "faults fired")):  # fmt: skip
        if line.get(name) is not None:
            shown.append(f"{line[name]} {label}")
    skip = {"case", "backend", "outcome", "rows_compared", "retries", "relogins", "faults_fired",
            "requests", "logins", "throttled"}  # fmt: skip
    shown += [f"{k.replace('_', ' ')} {v}" for k, v in sorted(line.items()) if k not in skip]
    return ", ".join(shown)


def render(results: list[dict[str, Any]], states: dict[tuple[str, str], str], summary: str,
           seconds: float, nodes: dict[str, str] | None = None) -> str:  # fmt: skip
    by_key = {(r["case"], r["backend"]): r for r in results}
    rows = []
    for case in CASES:
        cells = []
        for backend in BACKENDS:
            if backend not in case.backends:
                cells.append("n/a")
                continue
            state = states.get((case.id, backend), "not run")
            line = by_key.get((case.id, backend))
            cells.append(f"**{state}**" + (f": {_figures(line)}" if line and state == "pass"
                                            else ""))  # fmt: skip
        rows.append(f"| `{case.id}` | {case.injected} | {case.must_hold} | {cells[0]} | "
                    f"{cells[1]} |")  # fmt: skip
    today = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    passed = sum(1 for v in states.values() if v == "pass")
    out = [
        "# Reliability matrix",
        "",
        f"Generated {today} by `{COMMAND}` (`make reliability`), which runs every case in "
        "`tests/reliability/` (slow ones included) against the bundled simulator on SQLite and "
        f"PostgreSQL and records what each measured. pytest: {summary} ({seconds:.0f} s in all); "
        f"{passed} case-backend runs passed.",
        "",
        "Every case ends by comparing the ledger with the simulator's ground truth "
        "(`/_sim/truth`): transactions by reference and amount, the activity count, no key twice "
        "in the ledger or raw tables. Statement cases also check the published totals and rows "
        "against the ledger and run `verify` over the tree. Retries and re-logins come from the "
        "ledger's run metadata (or the Dagster materialization metadata); faults fired, "
        "from the simulator's `/_sim/stats`.",
        "",
        "| case | injected | must hold | SQLite | PostgreSQL |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "## Found and fixed",
        "",
        "Each row's tests ran in this report; to reproduce one row alone: `python -m pytest "
        "<its tests>` (PostgreSQL at `LEDGER_TEST_POSTGRES_URL`).",
        "",
        "| problem | fix | tests | result |",
        "|---|---|---|---|",
        *[
            f"| {problem} | {where} | {', '.join(f'`{t}`' for t in tests)} | "
            f"{fixed_outcome(tests, nodes or {})} |"
            for problem, where, tests in FIXED
        ],
        "",
        "## Limits and choices",
        "",
        *[f"- {note}" for note in NOTES],
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    extra = list(argv if argv is not None else sys.argv[1:])
    with tempfile.TemporaryDirectory() as scratch:
        results_path = Path(scratch) / "results.jsonl"
        junit = Path(scratch) / "junit.xml"
        env = {**os.environ, RESULTS_ENV: str(results_path)}
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/reliability", *extra_tests(), "-p",
             "no:cacheprovider", "-q", f"--junitxml={junit}", *extra],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        seconds = time.monotonic() - started
        tail = [line for line in done.stdout.splitlines() if line.strip()]
        summary = tail[-1].strip("= ") if tail else f"exit status {done.returncode}"
        results = []
        if results_path.exists():
            results = [json.loads(x) for x in results_path.read_text().splitlines() if x]
        states = outcomes(junit) if junit.exists() else {}
        nodes = node_outcomes(junit) if junit.exists() else {}
    DOCUMENT.parent.mkdir(exist_ok=True)
    DOCUMENT.write_text(render(results, states, summary, seconds, nodes), encoding="utf-8")
    print(f"{summary}; wrote {DOCUMENT.relative_to(ROOT)}")
    if done.returncode != 0:
        print(done.stdout[-5000:], file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
