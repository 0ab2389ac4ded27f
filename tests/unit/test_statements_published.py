"""The published-statement reader: listing, latest, versions, opening files, verifying."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from ledger_etl.statements.build import build_statement
from ledger_etl.statements.export import publish_built
from ledger_etl.statements.paths import UnsafeNameError
from ledger_etl.statements.published import NotPublishedError, PublishedStatements
from tests.unit.test_statements_build import entry, inputs

D = Decimal


def _publish_two_versions(root: Path) -> None:
    base = inputs(observation=None, observation_window=None)
    publish_built(build_statement(base), root, run_id="r1", formats=("json", "csv"))
    late = (*base.entries, entry("z9", 25, "3.00"))
    changed = replace(base, entries=late, balance_at_end=base.balance_at_end + D("3.00"))
    publish_built(build_statement(changed), root, run_id="r2", formats=("json", "csv"))
    july = replace(base, account_id="ACC-2")
    publish_built(build_statement(july), root, run_id="r3", formats=("json",))


def test_lists_accounts_months_and_versions_and_takes_the_latest(tmp_path: Path) -> None:
    _publish_two_versions(tmp_path)
    (tmp_path / "not an account").mkdir()
    (tmp_path / "ACC-1" / "2025-13").mkdir()
    (tmp_path / "ACC-1" / "2025-05").mkdir()  # a month folder without a complete version
    reader = PublishedStatements(tmp_path)
    assert reader.accounts() == ["ACC-1", "ACC-2"]
    assert reader.months("ACC-1") == ["2025-06"]
    assert [v.version for v in reader.versions("ACC-1", "2025-06")] == [1, 2]
    latest = reader.latest("ACC-1", "2025-06")
    assert latest is not None and latest.folder == tmp_path / "ACC-1" / "2025-06" / "v2"
    assert reader.latest("ACC-1", "2025-05") is None
    assert reader.version("ACC-1", "2025-06", 1).folder.name == "v1"
    with pytest.raises(NotPublishedError, match="version 7 is not published"):
        reader.version("ACC-1", "2025-06", 7)

    summaries = list(reader.summaries())
    assert [(s.account_id, s.month, s.version, s.versions) for s in summaries] == [
        ("ACC-1", "2025-06", 2, 2),
        ("ACC-2", "2025-06", 1, 1),
    ]
    first = summaries[0]
    document = reader.document("ACC-1", "2025-06")
    assert first.entries == len(document["entries"]) == 5
    assert (first.opening_balance, first.closing_balance) == (
        document["opening_balance"],
        document["closing_balance"],
    )
    assert D(first.closing_balance) - D(
        reader.document("ACC-1", "2025-06", 1)["closing_balance"]
    ) == D("3.00")


def test_opens_only_files_the_manifest_lists_and_never_a_symlink(tmp_path: Path) -> None:
    _publish_two_versions(tmp_path)
    reader = PublishedStatements(tmp_path)
    with reader.open("ACC-1", "2025-06", "statement.csv") as handle:
        assert handle.readline().startswith(b"posted_at,reference,")
    with pytest.raises(NotPublishedError, match=r"no file 'statement\.csv'"):
        reader.open("ACC-2", "2025-06", "statement.csv")
    with pytest.raises(NotPublishedError, match="no file"):
        reader.open("ACC-1", "2025-06", "../../ACC-2/2025-06/v1/statement.json")
    with pytest.raises(UnsafeNameError):
        reader.versions("../ACC-1", "2025-06")

    folder = tmp_path / "ACC-1" / "2025-06" / "v2"
    outside = tmp_path / "outside.csv"
    outside.write_text("reference,secret\n")
    os.chmod(folder, 0o750)
    (folder / "statement.csv").unlink()
    (folder / "statement.csv").symlink_to(outside)
    with pytest.raises(NotPublishedError, match="cannot be opened"):
        reader.open("ACC-1", "2025-06", "statement.csv")


def test_verify_reports_a_changed_byte_in_the_version_asked_for(tmp_path: Path) -> None:
    _publish_two_versions(tmp_path)
    reader = PublishedStatements(tmp_path)
    assert reader.verify("ACC-1", "2025-06") == []
    assert reader.verify("ACC-1", "2025-06", 1) == []
    target = tmp_path / "ACC-1" / "2025-06" / "v1" / "statement.csv"
    os.chmod(target, 0o640)
    target.write_bytes(target.read_bytes().replace(b"-10.50", b"-10.51"))
    assert reader.verify("ACC-1", "2025-06") == []
    problems = reader.verify("ACC-1", "2025-06", 1)
    assert problems and "statement.csv" in problems[0]


def test_a_replaced_manifest_is_read_again(tmp_path: Path) -> None:
    """Parsed manifests are cached; a manifest replaced on disk is not served from the cache."""
    _publish_two_versions(tmp_path)
    reader = PublishedStatements(tmp_path)
    first = reader.latest("ACC-2", "2025-06")
    assert first is not None
    manifest = first.folder / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["content_hash"] = "0" * 64
    os.chmod(first.folder, 0o750)
    manifest.unlink()
    manifest.write_text(json.dumps(doc))
    again = reader.latest("ACC-2", "2025-06")
    assert again is not None and again.content_hash == "0" * 64 != first.content_hash


def test_the_cli_lists_the_current_versions(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ledger_etl.cli import main

    empty = CliRunner().invoke(main, ["published", "--out", str(tmp_path)])
    assert empty.exit_code == 1 and "no published statements" in empty.output
    _publish_two_versions(tmp_path)
    listed = CliRunner().invoke(main, ["published", "--out", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    rows = [line.split() for line in listed.output.splitlines()[2:]]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("ACC-1", "2025-06", "v2/2"),
        ("ACC-2", "2025-06", "v1/1"),
    ]
    one = CliRunner().invoke(main, ["published", "--out", str(tmp_path), "--account", "ACC-2"])
    assert [line.split()[0] for line in one.output.splitlines()[2:]] == ["ACC-2"]
    bad = CliRunner().invoke(main, ["published", "--out", str(tmp_path), "--month", "2025-6"])
    assert bad.exit_code == 2 and "YYYY-MM" in bad.output
