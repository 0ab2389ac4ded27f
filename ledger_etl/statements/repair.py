"""`ledger-etl verify --repair`: rewrite each month's `versions.json` from its folders.

Every version folder is verified in full; the ones that fail are recorded as damaged (with the
problems and a fingerprint of what they hold) and the current version becomes the newest one
that verifies. Nothing is deleted, moved or changed inside a version folder: a damaged version
stays as the evidence it is. A symbolic link in the tree is reported, never followed or removed.
"""

from __future__ import annotations

from pathlib import Path

from ledger_etl.statements.layout import VERSIONS_FILE, month_lock
from ledger_etl.statements.paths import StatementError, UnsafePathError
from ledger_etl.statements.verify import month_dirs, verify_version
from ledger_etl.statements.versions import scan_versions, write_versions_index


def repair_tree(path: Path | str) -> tuple[list[str], list[str]]:
    """Repair every month at or below `path`; returns what was done and what could not be."""
    done: list[str] = []
    refused: list[str] = []
    months, links = month_dirs(Path(path))
    refused += links
    for month_dir in months:
        try:
            done += repair_month(month_dir)
        except (OSError, StatementError) as exc:
            refused.append(f"{month_dir}: cannot repair: {exc}")
    return done, refused


def repair_month(month_dir: Path) -> list[str]:
    account_id, month = month_dir.parent.name, month_dir.name
    if month_dir.is_symlink():
        raise UnsafePathError(f"{month_dir} is a symbolic link")
    with month_lock(month_dir):
        damaged: dict[int, list[str]] = {}
        for version in scan_versions(month_dir, recorded=False):
            problems = list(version.damage) or verify_version(version.folder)
            if problems:
                damaged[version.version] = problems
        written = write_versions_index(month_dir, account_id, month, damaged, refresh=True)
    done = [
        f"{month_dir}/v{number}: recorded as damaged and kept ({problems[0]})"
        for number, problems in sorted(damaged.items())
    ]
    if written:
        done.append(f"{month_dir}: rewrote {VERSIONS_FILE} from the version folders")
    return done
