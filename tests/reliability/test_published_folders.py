"""Damaged published trees: what `verify` says, what the next `statement` does, and that the
next publish or `verify --repair` brings `verify` back to clean without deleting evidence.

`DAMAGE` is the table: one line per way a published month can be damaged. The tree comes from a
real ledger synced from the simulator (SQLite; these are file-level cases): `statement` writes
v1, a note in the ledger changes, `statement` writes v2. Each case damages a copy of that tree.
A "forger" case rewrites the hashes too (`_reseal`), as someone editing on purpose would: only
comparing what two files both state can catch it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, select, update

from ledger_etl.ledger import schema as s
from ledger_etl.ledger.db import make_engine
from ledger_etl.simulator import SimulatorServer
from ledger_etl.statements import writers_pdf
from ledger_etl.statements.build import build_statement
from ledger_etl.statements.paths import parse_month
from ledger_etl.statements.query import read_statement_inputs
from tests.integration.ledger_helpers import account_ids, sync
from tests.reliability.harness import Measure, cli_env, run_cli, statement_folders
from tests.reliability.matrix import params
from tests.unit.statement_month import with_closing

START, END = datetime(2025, 5, 1, tzinfo=UTC), datetime(2025, 5, 4, tzinfo=UTC)
MAY = "2025-05"
DERIVED = {"versions.json", ".publish.lock"}  # rewritten by design; everything else is evidence
_LEDGER: dict[str, Engine] = {}  # the published tree's ledger, for the forger that re-renders


@dataclass(frozen=True)
class Published:
    engine: Engine
    url: str
    account: str
    pristine: Path  # the export dir holding <account>/2025-05/{v1,v2,versions.json}


def _statement(env: dict[str, str], out: Path, account: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["statement", "--month", MAY, "--account", account, "--out", str(out)], env)


def _change_a_note(engine: Engine, account: str, note: str) -> None:
    e = s.ledger_entries
    with engine.begin() as conn:
        first = conn.execute(
            select(e.c.reference).where(e.c.account_id == account).order_by(e.c.reference)
        ).scalars().first()  # fmt: skip
        conn.execute(update(e).where(e.c.account_id == account, e.c.reference == first)
                     .values(note=note))  # fmt: skip


@pytest.fixture(scope="module")
def published(shared_sim: SimulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Published:
    base = tmp_path_factory.mktemp("published")
    url = f"sqlite:///{base / 'ledger.sqlite'}"
    engine = make_engine(url)
    account = account_ids(shared_sim)[0]
    assert sync(shared_sim, engine, START, END, [account]).ok
    out = base / "exports"
    env = cli_env(None, url, out)
    assert _statement(env, out, account).returncode == 0
    _change_a_note(engine, account, "corrected after publishing")
    assert _statement(env, out, account).returncode == 0
    assert [f.name for f in statement_folders(out, account, MAY)] == ["v1", "v2"]
    assert run_cli(["verify", str(out)], env).returncode == 0
    _LEDGER["engine"] = engine
    return Published(engine, url, account, out)


# -- ways to damage a month (each takes the month folder and a folder outside the tree) --------
def _writable(path: Path) -> Path:
    os.chmod(path, 0o640)
    return path


def _edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    edit(doc)
    _writable(path).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def _reseal(month: Path) -> None:
    """What a careful forger does after an edit: every hash and versions.json made to match."""
    index_path = month / "versions.json"
    index = json.loads(index_path.read_text(encoding="utf-8"))
    for entry in index["versions"]:
        folder = month / entry["folder"]
        manifest_path = folder / "manifest.json"
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        for name in manifest["files"]:
            raw = (folder / name).read_bytes()
            manifest["files"][name] = {"sha256": hashlib.sha256(raw).hexdigest(),
                                       "bytes": len(raw)}  # fmt: skip
        raw_manifest = (json.dumps(manifest, indent=2) + "\n").encode()
        _writable(manifest_path).write_bytes(raw_manifest)
        entry["manifest_sha256"] = hashlib.sha256(raw_manifest).hexdigest()
        entry["content_hash"] = manifest["content_hash"]
        entry["statement_status"] = manifest["status"]
        entry["generated_at"] = manifest["generated_at"]
    index_path.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")


def _flip(value: str, one: str, other: str) -> str:
    return other if value == one else one


def _forge_reconciliation(month: Path, outside: Path) -> None:
    def edit(doc: dict) -> None:
        doc["reconciliation"]["status"] = _flip(doc["reconciliation"]["status"], "RECONCILED",
                                                "UNVERIFIED")  # fmt: skip

    _edit_json(month / "v2" / "manifest.json", edit)
    _reseal(month)


def _forge_status(month: Path, outside: Path) -> None:
    def edit(doc: dict) -> None:
        doc["status"] = _flip(doc["status"], "FINAL", "PROVISIONAL")

    _edit_json(month / "v2" / "manifest.json", edit)
    _reseal(month)


def _swap_folders(month: Path, outside: Path) -> None:
    (month / "v1").rename(month / "swap")
    (month / "v2").rename(month / "v1")
    (month / "swap").rename(month / "v2")
    _reseal(month)


def _two_rows_with_other_amounts(amounts: list[str]) -> tuple[int, int]:
    first = 0
    second = next(i for i, a in enumerate(amounts) if a != amounts[first])
    return first, second


def _swap_csv_amounts(month: Path, outside: Path) -> None:
    path = month / "v2" / "statement.csv"
    lines = path.read_bytes().decode().split("\r\n")
    head = lines[0].split(",")
    at = head.index("amount")
    rows = [line.split(",") for line in lines[1:-1]]
    i, j = _two_rows_with_other_amounts([r[at] for r in rows])
    rows[i][at], rows[j][at] = rows[j][at], rows[i][at]
    text = "\r\n".join([lines[0], *(",".join(r) for r in rows), ""])
    _writable(path).write_bytes(text.encode())
    _reseal(month)


def _swap_parquet_amounts(month: Path, outside: Path) -> None:
    path = month / "v2" / "statement.parquet"
    table = pq.read_table(path)
    amounts = table.column("amount").to_pylist()
    i, j = _two_rows_with_other_amounts([str(a) for a in amounts])
    amounts[i], amounts[j] = amounts[j], amounts[i]
    at = table.schema.get_field_index("amount")
    field = table.schema.field(at)
    table = table.set_column(at, field, pa.array(amounts, field.type))
    pq.write_table(table, _writable(path))
    _reseal(month)


def _rerender_pdf_with_another_closing(month: Path, outside: Path) -> None:
    """v2's statement.pdf drawn again from the ledger with a closing 100.00 higher (movement to
    match), its footers keeping the real content hash, and every hash resealed."""
    engine = _LEDGER["engine"]
    real = build_statement(read_statement_inputs(engine, month.parent.name, parse_month(MAY)))
    forged = replace(with_closing(real, real.closing_balance + Decimal("100.00")), version=2)
    manifest = json.loads((month / "v2" / "manifest.json").read_text(encoding="utf-8"))
    path = _writable(month / "v2" / "statement.pdf")
    with path.open("wb") as handle, pytest.MonkeyPatch.context() as patch:
        patch.setattr(writers_pdf, "statement_content_hash", lambda _s: manifest["content_hash"])
        writers_pdf.write_pdf(forged, handle)
    _reseal(month)


def _truncate(relative: str) -> Callable[[Path, Path], None]:
    def damage(month: Path, outside: Path) -> None:
        path = _writable(month / relative)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    return damage


def _to_symlink(relative: str) -> Callable[[Path, Path], None]:
    """The file replaced by a link to a copy of itself outside the tree."""

    def damage(month: Path, outside: Path) -> None:
        path = month / relative
        target = outside / path.name
        shutil.copyfile(path, target)
        path.unlink()
        path.symlink_to(target)

    return damage


def _delete_index(month: Path, outside: Path) -> None:
    (month / "versions.json").unlink()


def _drop_current_from_index(month: Path, outside: Path) -> None:
    """What a crash between the v2 rename and the index write leaves."""

    def edit(doc: dict) -> None:
        doc["versions"] = [v for v in doc["versions"] if v["folder"] != "v2"]
        doc["versions"][0].update(state="current", superseded_by=None)
        doc["current_version"] = 1

    _edit_json(month / "versions.json", edit)


def _lock_link(existing: bool) -> Callable[[Path, Path], None]:
    def damage(month: Path, outside: Path) -> None:
        target = outside / "victim"
        if existing:
            target.write_text("not yours")
            os.chmod(target, 0o600)
        (month / ".publish.lock").unlink(missing_ok=True)
        (month / ".publish.lock").symlink_to(target)

    return damage


def _unlink_lock(month: Path) -> None:
    (month / ".publish.lock").unlink()


@dataclass(frozen=True)
class Damage:
    id: str
    damage: Callable[[Path, Path], None]
    verify_says: str  # in `verify`'s output before any healing
    statement_exit: int  # of the next `statement`
    statement_says: str  # in its output: names the file, the version written or kept
    repaired: bool = True  # `verify --repair` alone brings verify back to clean
    by_hand: Callable[[Path], None] | None = None  # what a person must do first (links)


DAMAGE = (
    Damage("index_deleted", _delete_index, "versions.json is missing", 0, "versions.json"),
    Damage("index_truncated", _truncate("versions.json"), "versions.json cannot be read", 0,
           "versions.json"),
    Damage("index_stale_after_crash", _drop_current_from_index, "versions.json does not list v2",
           0, "versions.json"),
    Damage("current_manifest_truncated", _truncate("v2/manifest.json"), "manifest.json", 0,
           "v2 is damaged and kept as evidence, never the current version: manifest.json"),
    Damage("old_manifest_truncated", _truncate("v1/manifest.json"), "manifest.json", 0,
           "v1 is damaged and kept as evidence, never the current version: manifest.json"),
    Damage("current_statement_json_symlink", _to_symlink("v2/statement.json"),
           "statement.json is a symbolic link", 0, "v2 is damaged and kept as evidence, never the "
           "current version: statement.json is a symbolic link"),
    Damage("old_statement_json_symlink", _to_symlink("v1/statement.json"),
           "statement.json is a symbolic link", 0, "unchanged"),
    Damage("forged_reconciliation", _forge_reconciliation, "manifest.json reconciliation status",
           0, "v2 is damaged and kept as evidence, never the current version: manifest.json "
           "reconciliation status"),
    Damage("forged_status", _forge_status, "manifest.json status", 0, "manifest.json status"),
    Damage("folders_swapped", _swap_folders, "manifest.json says version 1, its folder says 2",
           0, "v2 is damaged and kept as evidence, never the current version: manifest.json says "
           "version 1"),
    Damage("csv_amounts_swapped", _swap_csv_amounts, "statement.csv row 1 amount", 0,
           "statement.csv row 1 amount"),
    Damage("parquet_amounts_swapped", _swap_parquet_amounts, "statement.parquet row 1 amount", 0,
           "statement.parquet row 1 amount"),
    Damage("pdf_rerendered_with_another_closing", _rerender_pdf_with_another_closing,
           "statement.pdf closing balance", 0, "v2 is damaged and kept as evidence, never the "
           "current version: statement.pdf"),
    Damage("lock_links_to_new_file", _lock_link(existing=False), ".publish.lock: is a symbolic "
           "link", 1, ".publish.lock is a symbolic link", repaired=False, by_hand=_unlink_lock),
    Damage("lock_links_to_existing_file", _lock_link(existing=True), ".publish.lock: is a "
           "symbolic link", 1, ".publish.lock is a symbolic link", repaired=False,
           by_hand=_unlink_lock),
)  # fmt: skip


def _evidence(month: Path) -> dict[str, object]:
    """Every entry below the month folder but the derived ones: bytes, or a link's target."""
    found: dict[str, object] = {}
    for path in sorted(month.rglob("*")):
        name = str(path.relative_to(month))
        if name in DERIVED or (path.is_dir() and not path.is_symlink()):
            continue
        found[name] = f"-> {os.readlink(path)}" if path.is_symlink() else path.read_bytes()
    return found


def _damaged_copy(published: Published, case: Damage, where: Path) -> tuple[Path, Path, Path]:
    out, outside = where / "exports", where / "outside"
    shutil.copytree(published.pristine, out, symlinks=True)
    outside.mkdir()
    month = out / published.account / MAY
    case.damage(month, outside)
    return out, month, outside


def _clean(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr, done.stderr


# Each case runs the CLI several times in subprocesses; one case of each kind runs by default,
# all of them in CI (and with RUN_SLOW=1).
QUICK = {"index_stale_after_crash", "current_manifest_truncated", "forged_reconciliation",
         "csv_amounts_swapped", "lock_links_to_existing_file"}  # fmt: skip


@pytest.mark.parametrize(("case", "backend"), params("published_tree_damage"))
@pytest.mark.parametrize(
    "damage",
    [pytest.param(d, marks=() if d.id in QUICK else pytest.mark.slow) for d in DAMAGE],
    ids=[d.id for d in DAMAGE],
)
def test_a_damaged_month_heals_without_losing_evidence(
    case: str, backend: str, damage: Damage, published: Published, tmp_path: Path
) -> None:
    env = cli_env(None, published.url)
    # The next publish.
    out, month, outside = _damaged_copy(published, damage, tmp_path / "publish")
    evidence = _evidence(month)
    found = run_cli(["verify", str(out)], env)
    _clean(found)
    assert found.returncode == 1 and damage.verify_says in found.stderr, found.stderr
    done = _statement(env, out, published.account)
    _clean(done)
    assert done.returncode == damage.statement_exit, done.stderr
    assert damage.statement_says in done.stdout + done.stderr, done.stdout + done.stderr
    if damage.by_hand is not None:
        assert not (outside / "victim").exists() or (
            stat.S_IMODE((outside / "victim").stat().st_mode) == 0o600
            and (outside / "victim").read_text() == "not yours"
        )
        damage.by_hand(month)
        evidence = _evidence(month)
        assert _statement(env, out, published.account).returncode == 0
    healed = run_cli(["verify", str(out)], env)
    assert healed.returncode == 0, healed.stderr
    after = _evidence(month)
    assert {k: after.get(k) for k in evidence} == evidence  # nothing deleted or changed
    # Or `verify --repair`, on another copy.
    out, month, outside = _damaged_copy(published, damage, tmp_path / "repair")
    evidence = _evidence(month)
    repaired = run_cli(["verify", "--repair", str(out)], env)
    _clean(repaired)
    if damage.repaired:
        assert repaired.returncode == 0, repaired.stderr
        assert run_cli(["verify", str(out)], env).returncode == 0
    else:
        assert repaired.returncode == 1 and ".publish.lock" in repaired.stderr, repaired.stderr
    after = _evidence(month)
    assert {k: after.get(k) for k in evidence} == evidence
    Measure(case, backend).done(damage=damage.id)


# -- a publish interrupted between the version folder and the index ----------------------------
def _copy_with_a_new_version_due(published: Published, where: Path) -> tuple[Path, str]:
    """The published tree and a copy of its ledger in which one note changed (v3 is due)."""
    out = where / "exports"
    shutil.copytree(published.pristine, out, symlinks=True)
    database = where / "ledger.sqlite"
    with sqlite3.connect(published.pristine.parent / "ledger.sqlite") as source:
        with sqlite3.connect(database) as copy:  # the backup API: the WAL's pages too
            source.backup(copy)
    url = f"sqlite:///{database}"
    engine = make_engine(url)
    _change_a_note(engine, published.account, "corrected a second time")
    engine.dispose()
    return out, url


def _current_version(out: Path, account: str) -> int:
    index = json.loads((out / account / MAY / "versions.json").read_text(encoding="utf-8"))
    return index["current_version"]


@pytest.mark.slow  # several CLI processes; runs in CI and with RUN_SLOW=1
@pytest.mark.parametrize(("case", "backend"), params("sigkill_publish"))
@pytest.mark.parametrize("heal", ["next publish", "verify --repair"])
def test_a_publish_killed_before_the_index_write_heals(
    case: str, backend: str, heal: str, published: Published, tmp_path: Path
) -> None:
    out, url = _copy_with_a_new_version_due(published, tmp_path)
    env = cli_env(None, url)
    account = published.account
    killed = run_cli(["statement", "--month", MAY, "--account", account, "--out", str(out)],
                     {**env, "LEDGER_ETL_KILL_AT": "after_version_rename"})  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert [f.name for f in statement_folders(out, account, MAY)] == ["v1", "v2", "v3"]
    assert _current_version(out, account) == 2
    stale = run_cli(["verify", str(out)], env)
    assert stale.returncode == 1 and "versions.json does not list v3" in stale.stderr, stale.stderr
    if heal == "next publish":
        again = _statement(env, out, account)
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("unchanged: ") and again.stdout.splitlines()[0].endswith(
            "v3"
        )
        assert "versions.json" in again.stderr, again.stderr
    else:
        repaired = run_cli(["verify", "--repair", str(out)], env)
        assert repaired.returncode == 0 and "rewrote versions.json" in repaired.stdout
    assert _current_version(out, account) == 3
    assert run_cli(["verify", str(out)], env).returncode == 0
    Measure(case, backend).done(kills=1, heal=heal)


@pytest.mark.slow  # several CLI processes; runs in CI and with RUN_SLOW=1
@pytest.mark.parametrize(("case", "backend"), params("index_out_of_space"))
def test_out_of_space_at_the_index_says_what_was_published(
    case: str, backend: str, published: Published, tmp_path: Path
) -> None:
    """A real ENOSPC exactly at `versions.json`: a tmpfs (we mount one; skipped where that is
    not allowed) remounted with just enough inodes for the new version folder and its files,
    so the version is renamed into place and the index's temporary file cannot be created."""
    fs = tmp_path / "fs"
    fs.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,nr_inodes=4096", "tmpfs", str(fs)],
                       check=True, capture_output=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        out, url = _copy_with_a_new_version_due(published, tmp_path)
        shutil.copytree(out, fs / "exports", symlinks=True)
        out = fs / "exports"
        env = cli_env(None, url)
        account = published.account
        used = os.statvfs(fs).f_files - os.statvfs(fs).f_ffree
        version_inodes = 1 + len(list((out / account / MAY / "v2").iterdir()))
        subprocess.run(["mount", "-o", f"remount,nr_inodes={used + version_inodes}", str(fs)],
                       check=True)  # fmt: skip
        full = _statement(env, out, account)
        assert full.returncode == 1, full.stderr
        first = full.stderr.splitlines()[0]
        assert "v3 is published in" in first and "versions.json could not be written" in first
        assert "No space left" in first and "nothing was published" not in full.stderr, first
        assert [f.name for f in statement_folders(out, account, MAY)] == ["v1", "v2", "v3"]
        assert run_cli(["verify", str(out)], env).returncode == 1
        subprocess.run(["mount", "-o", "remount,nr_inodes=4096", str(fs)], check=True)
        again = _statement(env, out, account)
        assert again.returncode == 0 and again.stdout.startswith("unchanged: "), again.stderr
        assert _current_version(out, account) == 3
        assert run_cli(["verify", str(out)], env).returncode == 0
    finally:
        subprocess.run(["umount", "-l", str(fs)], check=False)
    Measure(case, backend).done(failed_runs=1)
