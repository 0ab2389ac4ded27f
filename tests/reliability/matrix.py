"""The reliability matrix as data: what each case injects and what must hold afterwards.

The tests in this package and `report.py` (which renders docs/reliability.md) share this table.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Case:
    id: str
    area: str
    injected: str
    must_hold: str
    backends: tuple[str, ...] = BACKENDS


# Run in CI (and by the report), skipped by a local `make test`: long cases, and the PostgreSQL
# twin of API cases whose database work is the same as on SQLite.
SLOW_CASES = {"http_429_storm", "dagster_transient_faults", "sigkill_dagster_run",
              "schedule_and_backfill_together", "secret_canaries"}  # fmt: skip
SLOW_ON_POSTGRESQL = {"http_5xx_every_k", "http_drop_every_k", "session_expiry_every_n",
                      "html_and_truncated_json_200", "http_hung_past_timeout"}  # fmt: skip


LEDGER_EQUALS_TRUTH = (
    "ledger == ground truth (transactions by reference and amount, activity count); "
    "no key twice; no gap left"
)

CASES: tuple[Case, ...] = (
    # -- the API misbehaves (CLI `sync` + `statement`) -------------------------------------------
    Case("http_429_storm", "api", "simulator rate limit 10/s against a client at 200/s, plus a "
         "burst of 12 consecutive 429s", LEDGER_EQUALS_TRUTH),
    Case("http_5xx_every_k", "api", "503 on every 4th history request", LEDGER_EQUALS_TRUTH),
    Case("http_drop_every_k", "api", "connection dropped mid-response on every 5th request",
         LEDGER_EQUALS_TRUTH),
    Case("http_hung_past_timeout", "api", "3 history answers delayed 3 s past a 1 s read timeout",
         LEDGER_EQUALS_TRUTH),
    Case("session_expiry_every_n", "api", "session killed before every 10th history request",
         LEDGER_EQUALS_TRUTH + "; re-logins observed"),
    Case("truncated_windows", "api", "history answers silently cut to the newest 6 rows, the "
         "client's split threshold set to that cap",
         LEDGER_EQUALS_TRUTH + "; windows split"),
    Case("late_arriving_rows", "api", "rows of both endpoints visible only 12 h after "
         "their time; sync up to now, clock +13 h, sync again",
         "first sync: ledger is a subset of truth; after the re-sync ledger == truth"),
    Case("html_and_truncated_json_200", "api", "a 200 with an HTML body on every 4th and JSON "
         "cut in half on every 5th history request", LEDGER_EQUALS_TRUTH),
    Case("dagster_transient_faults", "api", "a Dagster materialization of a month partition "
         "through random 429s, 503s, drops and session expiry at once",
         LEDGER_EQUALS_TRUTH + "; statement FINAL and RECONCILED; every asset check passes"),
    # -- processes die ---------------------------------------------------------------------------
    Case("sigkill_sync", "crash", "SIGKILL of `ledger-etl sync` at after_fetch:1, mid_upsert:2 "
         "and before_commit:3, then a re-run", LEDGER_EQUALS_TRUTH),
    Case("sigkill_dagster_run", "crash", "SIGKILL of a Dagster run (materialize in its own "
         "process) at after_fetch:2, mid_upsert:1 and before_commit:2, then a re-run",
         LEDGER_EQUALS_TRUTH + "; one statement version; verify clean"),
    Case("pg_terminate_backend", "crash", "pg_terminate_backend of the sync's connection while "
         "its transaction is open (after rows were written), then a re-run",
         "the killed transaction leaves nothing; after the re-run " + LEDGER_EQUALS_TRUTH,
         ("postgresql",)),
    # -- the export folder fails -----------------------------------------------------------------
    Case("export_read_only", "exports", "`ledger-etl statement` into a read-only tmpfs, then "
         "remounted read-write and run again",
         "first run fails with a clear error and writes nothing; the second writes v1; verify "
         "clean; totals == ledger"),
    Case("export_out_of_space", "exports", "`ledger-etl statement` in a process with "
         "RLIMIT_FSIZE 8 KiB, then without the limit",
         "first run fails and leaves no partial version; the second writes v1; verify clean"),
    # -- concurrency -----------------------------------------------------------------------------
    Case("schedule_and_backfill_together", "concurrency", "two Dagster runs (tagged schedule and "
         "backfill) of the same partition in two processes at the same time",
         LEDGER_EQUALS_TRUTH + "; both runs succeed; exactly one statement version"),
    # -- statements change -----------------------------------------------------------------------
    Case("statement_republished", "statements", "the stored statement published again, "
         "unchanged ledger", "nothing written; still v1; files byte-identical; verify clean"),
    Case("late_row_restates_closed_month", "statements", "rows of a closed, published month "
         "visible only 20 days late; clock +20 days; sync and publish again",
         "v2 with a diff of the added entries; v1 byte-identical; v2 totals == ledger == truth; "
         "verify clean"),
    # -- bad input -------------------------------------------------------------------------------
    Case("bad_input_rows", "input", "corrupt rows of every kind: unknown type, unparseable "
         "amount, unknown currency, missing reference, missing date, 10,000-character note, "
         "right-to-left and control characters, duplicate reference with another amount",
         "the run completes; each bad row is quarantined or flagged; counts in the run "
         "metadata (CLI run summary and Dagster metadata); every other row == truth; exports "
         "carry no control characters"),
    # -- secrets ---------------------------------------------------------------------------------
    Case("secret_canaries", "secrets", "canary API key and password, a wrong canary password "
         "and key, and every token issued, through success, 401, retries, session expiry, "
         "exceptions and debug logging (in-process, CLI and Dagster)",
         "zero canary hits in logs, Dagster event log and run metadata, the database, exports "
         "and audit files"),
    # -- export hygiene --------------------------------------------------------------------------
    Case("export_formula_injection", "exports", "OWASP CSV-injection payloads in notes and "
         "instruments of real ledger rows", "CSV and XLSX cells are text with a ' prefix; "
         "amounts stay numbers; no XLSX formula"),
    Case("export_path_traversal", "exports", "account ids `../x`, `..`, `/tmp/abs`, "
         "`a/../../b`, a NUL byte; one planted in the ledger", "refused with a clear error; "
         "nothing written outside the export folder"),
    Case("export_permissions_umask", "exports", "`ledger-etl statement` under umask 000",
         "files 0440, folders 0750, index 0640; nothing world-accessible"),
    Case("export_tamper_detected", "exports", "one byte of each file flipped, a file removed, "
         "a file added", "`ledger-etl verify` exits 1 naming the file; passes again when "
         "restored"),
    # -- published folders damaged (file-level: SQLite only) -------------------------------------
    Case("published_tree_damage", "exports", "each line of `DAMAGE` in "
         "tests/reliability/test_published_folders.py: versions.json deleted, truncated or stale; "
         "a manifest truncated; statement.json a symlink; manifest status or reconciliation "
         "forged, folders swapped, CSV or Parquet amounts swapped, the PDF re-rendered with "
         "another closing (hashes resealed); "
         "`.publish.lock` a symlink out of the tree",
         "`verify` exits 1 naming the file; the next `statement` names it, exits 0 (1 for a "
         "link, which it refuses) without a traceback, and writes v3 beside a damaged current "
         "version; after it, or after `verify --repair`, verify is clean and every file of the "
         "damaged tree is still there, unchanged; nothing outside the tree is created or "
         "chmodded", ("sqlite",)),
    Case("sigkill_publish", "crash", "SIGKILL of `ledger-etl statement` after v2 is renamed into "
         "place, before versions.json is rewritten (`after_version_rename`)",
         "verify names versions.json; the next `statement` answers unchanged v2 and rewrites the "
         "index (or `verify --repair` does); verify clean", ("sqlite",)),
    Case("index_out_of_space", "exports", "`ledger-etl statement` on a tmpfs with just enough "
         "inodes for the v2 folder, none for the new versions.json",
         "exits 1 saying v2 is published and versions.json could not be written; the next "
         "`statement` (space freed) rewrites it; verify clean", ("sqlite",)),
)  # fmt: skip

BY_ID = {case.id: case for case in CASES}


def params(*ids: str) -> list[object]:
    """(case id, backend) pairs for `pytest.mark.parametrize`, slow ones marked."""
    pairs = []
    for case_id in ids:
        for backend in BY_ID[case_id].backends:
            slow = case_id in SLOW_CASES or (
                backend == "postgresql" and case_id in SLOW_ON_POSTGRESQL
            )
            marks = [pytest.mark.slow] if slow else []
            pairs.append(pytest.param(case_id, backend, marks=marks, id=f"{case_id}-{backend}"))
    return pairs
