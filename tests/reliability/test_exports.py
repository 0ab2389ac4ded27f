"""The export folder under stress and attack: read-only, full, hostile text and names, a
permissive umask, tampering. The statements come from a real synced ledger, through the CLI."""

from __future__ import annotations

import csv
import os
import resource
import stat
import subprocess
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine, select, update

from ledger_etl.ledger import schema as s
from ledger_etl.monthly import month_bounds
from ledger_etl.simulator import SimulatorServer
from ledger_etl.statements import UnsafeNameError, publish_statement
from tests.conftest import database_url_of, make_test_engine
from tests.integration.ledger_helpers import account_ids, sync
from tests.reliability.harness import (
    Measure,
    assert_ledger_equals_truth,
    assert_statement_equals_ledger,
    cli_env,
    run_cli,
    statement_folders,
)
from tests.reliability.matrix import params
from tests.unit.test_statements_export import OWASP_PAYLOADS

START, END = datetime(2025, 5, 1, tzinfo=UTC), datetime(2025, 5, 4, tzinfo=UTC)
MAY = "2025-05"


@pytest.fixture
def ledger(
    request: pytest.FixtureRequest, tmp_path: Path, shared_sim: SimulatorServer
) -> tuple[Engine, str, int]:
    """A ledger synced from the simulator (no faults), one account, its rows compared."""
    backend = request.node.callspec.params["backend"]
    engine = make_test_engine(backend, tmp_path, request)
    account = account_ids(shared_sim)[0]
    assert sync(shared_sim, engine, START, END, [account]).ok
    return engine, account, assert_ledger_equals_truth(shared_sim, engine, [account], START, END)


def _env(engine: Engine, exports: Path) -> dict[str, str]:
    return cli_env(None, database_url_of(engine), exports)


def _statement(env: dict[str, str], out: Path, account: str, **kw):  # type: ignore[no-untyped-def]
    return run_cli(
        ["statement", "--month", MAY, "--account", account, "--out", str(out)], env, **kw
    )


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith((".tmp", ".partial"))]


def _check_published(engine: Engine, out: Path, account: str) -> None:
    folders = statement_folders(out, account, MAY)
    assert [f.name for f in folders] == ["v1"]
    assert_statement_equals_ledger(engine, folders[0], account, *month_bounds(MAY))
    assert not _leftovers(out)


@pytest.mark.parametrize(("case", "backend"), params("export_read_only"))
def test_read_only_export_folder_then_fixed(
    case: str, backend: str, ledger: tuple[Engine, str, int], tmp_path: Path
) -> None:
    engine, account, compared = ledger
    mount = tmp_path / "ro"
    mount.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=True,
                       capture_output=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        env = _env(engine, mount)
        failed = _statement(env, mount, account)
        assert failed.returncode == 1, failed.stderr
        first = failed.stderr.splitlines()[0]
        assert first.startswith("Error: cannot write") and "Read-only" in first, failed.stderr
        subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=True)
        assert list(mount.iterdir()) == []
        fixed = _statement(env, mount, account)
        assert fixed.returncode == 0, fixed.stderr
        _check_published(engine, mount, account)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
    Measure(case, backend).done(rows_compared=compared, failed_runs=1, statements=1)


@pytest.mark.parametrize(("case", "backend"), params("export_out_of_space"))
def test_export_out_of_space_then_fixed(
    case: str, backend: str, ledger: tuple[Engine, str, int], tmp_path: Path
) -> None:
    engine, account, compared = ledger
    out = tmp_path / "exports"
    env = _env(engine, out)

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (8 * 1024, 8 * 1024))

    failed = _statement(env, out, account, preexec_fn=small_files)
    assert failed.returncode == 1, failed.stderr
    # One clear line first (openpyxl may add "Exception ignored" noise as the process exits).
    first = failed.stderr.splitlines()[0]
    assert first.startswith("Error: cannot write") and "File too large" in first, failed.stderr
    assert statement_folders(out, account, MAY) == [] and not _leftovers(out)
    fixed = _statement(env, out, account)
    assert fixed.returncode == 0, fixed.stderr
    _check_published(engine, out, account)
    Measure(case, backend).done(rows_compared=compared, failed_runs=1, statements=1)


@pytest.mark.parametrize(("case", "backend"), params("export_formula_injection"))
def test_formula_injection_in_real_rows_is_neutralised(
    case: str, backend: str, ledger: tuple[Engine, str, int], tmp_path: Path
) -> None:
    engine, account, compared = ledger
    e = s.ledger_entries
    first, end = month_bounds(MAY)  # the sync's edge probe also stores a row of April 30
    with engine.begin() as conn:
        references = conn.execute(
            select(e.c.reference).where(e.c.account_id == account, e.c.posted_at >= first,
                                        e.c.posted_at < end).order_by(e.c.reference)
        ).scalars().all()  # fmt: skip
        assert len(references) >= len(OWASP_PAYLOADS)
        hostile = dict(zip(references, OWASP_PAYLOADS, strict=False))
        for reference, payload in hostile.items():  # as if the broker had sent these texts
            conn.execute(update(e).where(e.c.account_id == account, e.c.reference == reference)
                         .values(note=payload, instrument=payload))  # fmt: skip
    out = tmp_path / "exports"
    done = _statement(_env(engine, out), out, account)
    assert done.returncode == 0, done.stderr
    folder = statement_folders(out, account, MAY)[0]
    with (folder / "statement.csv").open(encoding="utf-8", newline="") as handle:
        rows = {r["reference"]: r for r in csv.DictReader(handle)}
    for reference, payload in hostile.items():
        assert rows[reference]["note"] == "'" + payload
        assert rows[reference]["instrument"] == "'" + payload
    assert all(Decimal(r["amount"]) == Decimal(r["amount"].lstrip("'")) for r in rows.values())
    assert not any(r["amount"].startswith("'") for r in rows.values())
    book = load_workbook(folder / "statement.xlsx")
    sheet = book["Transactions"]
    head = [c.value for c in sheet[1]]
    for row in sheet.iter_rows(min_row=2):
        cells = dict(zip(head, row, strict=True))
        assert cells["Amount"].data_type == "n"
        note = cells["Note"].value
        if note and note.lstrip("'").replace("\n", "\r") in set(OWASP_PAYLOADS):
            assert note.startswith("'")
    assert all(c.data_type != "f" for ws in book.worksheets for r in ws.iter_rows() for c in r)
    assert_statement_equals_ledger(engine, folder, account, *month_bounds(MAY))
    Measure(case, backend).done(rows_compared=compared, payloads=len(hostile))


@pytest.mark.parametrize(("case", "backend"), params("export_path_traversal"))
def test_path_traversal_in_account_ids_is_refused(
    case: str, backend: str, ledger: tuple[Engine, str, int], tmp_path: Path
) -> None:
    engine, _, compared = ledger
    out = tmp_path / "box" / "exports"
    out.mkdir(parents=True)
    env = _env(engine, out)
    hostile = ["../x", "..", str(tmp_path / "abs"), "a/../../b", "a\\..\\b", "./a"]
    for bad in hostile:
        done = _statement(env, out, bad)
        assert done.returncode == 2 and "account id" in done.stderr, (bad, done.stderr)
    with pytest.raises(UnsafeNameError):
        publish_statement(engine, "a\x00b", MAY, out)
    # An account id planted in the ledger itself is refused when every account is published.
    with engine.begin() as conn:
        conn.execute(s.accounts.insert().values(
            account_id="../../planted", account_name="x", account_type="CFD", status="ENABLED",
            preferred=False, currency_raw="USD", currency="USD", first_seen_at=START,
            last_seen_at=START))  # fmt: skip
    planted = run_cli(["statement", "--month", MAY, "--out", str(out)], env)
    assert planted.returncode != 0 and "account id" in planted.stderr
    outside = [p for p in (tmp_path).rglob("*") if out not in p.parents and p != out]
    assert not [p for p in outside if p.is_file() and p.suffix in (".csv", ".json", ".xlsx")]
    assert not (tmp_path / "planted").exists() and not (tmp_path / "abs").exists()
    Measure(case, backend).done(rows_compared=compared, names_refused=len(hostile) + 2)


@pytest.mark.parametrize(("case", "backend"), params("export_permissions_umask"))
def test_permissions_under_a_permissive_umask(
    case: str, backend: str, ledger: tuple[Engine, str, int], tmp_path: Path
) -> None:
    engine, account, compared = ledger
    out = tmp_path / "exports"
    done = _statement(_env(engine, out), out, account, preexec_fn=lambda: os.umask(0))
    assert done.returncode == 0, done.stderr
    folder = statement_folders(out, account, MAY)[0]
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o440, path
    assert stat.S_IMODE((folder.parent / "versions.json").stat().st_mode) == 0o640
    for path in [out / account, *out.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o007 == 0, (path, oct(mode))  # nothing for "other"
        if path.is_dir():
            assert mode == 0o750, (path, oct(mode))
    Measure(case, backend).done(rows_compared=compared, files=sum(1 for _ in out.rglob("*")))


@pytest.mark.slow  # several CLI processes; runs in CI and with RUN_SLOW=1
@pytest.mark.parametrize(("case", "backend"), params("export_tamper_detected"))
def test_tampering_is_detected_by_verify(
    case: str, backend: str, ledger: tuple[Engine, str, int], tmp_path: Path
) -> None:
    engine, account, compared = ledger
    out = tmp_path / "exports"
    env = _env(engine, out)
    assert _statement(env, out, account).returncode == 0
    folder = statement_folders(out, account, MAY)[0]
    assert run_cli(["verify", str(out)], env).returncode == 0
    detected = 0
    for path in sorted(p for p in folder.iterdir()):
        original = path.read_bytes()
        os.chmod(path, 0o640)
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0x01
        path.write_bytes(bytes(flipped))
        done = run_cli(["verify", str(out)], env)
        assert done.returncode == 1 and path.name in done.stderr, (path.name, done.stderr)
        path.write_bytes(original)
        os.chmod(path, 0o440)
        detected += 1
    victim = folder / "statement.csv"
    kept = victim.read_bytes()
    victim.unlink()
    removed = run_cli(["verify", str(out)], env)
    assert removed.returncode == 1 and "statement.csv is missing" in removed.stderr
    victim.write_bytes(kept)
    os.chmod(victim, 0o440)
    (folder / "extra.txt").write_text("added")
    added = run_cli(["verify", str(out)], env)
    assert added.returncode == 1 and "extra.txt" in added.stderr
    (folder / "extra.txt").unlink()
    assert run_cli(["verify", str(out)], env).returncode == 0
    Measure(case, backend).done(rows_compared=compared, tampering_detected=detected + 2)
