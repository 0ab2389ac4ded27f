"""Verify published statements: every hash, every fact two files both state, and the index.

`inspect_tree(path)` takes a version folder, a month folder, an account folder or the export
directory. For each month it checks every version folder (`verify_version`: the manifest lists
exactly the files there, with their sizes and hashes; then `crosscheck.check_content`), that
`versions.json` is there and states what the folders state, and that nothing below the export
directory is a symbolic link. A damaged version recorded in `versions.json` whose folder still
holds what was recorded is evidence kept on purpose: it is reported as a note, not a problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger_etl.statements.crosscheck import check_content
from ledger_etl.statements.layout import (
    AUDIT_FILE,
    FILE_NAMES,
    MANIFEST_FILE,
    STATEMENT_JSON,
    VERSIONS_FILE,
    sha256_file,
)
from ledger_etl.statements.paths import (
    StatementError,
    UnsafeNameError,
    parse_month,
    read_regular,
    validate_account_id,
    version_number,
)
from ledger_etl.statements.versions import (
    damage_records,
    fingerprint,
    index_doc,
    read_index,
    scan_versions,
)

INDEX_FIELDS = (
    "state",
    "superseded_by",
    "statement_status",
    "content_hash",
    "manifest_sha256",
    "generated_at",
)
REPAIR_HINT = "`ledger-etl verify --repair` or the next publish rewrites it"


@dataclass
class Verification:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # recorded damage, kept as evidence


def verify_tree(path: Path | str) -> list[str]:
    """The problems found under `path` (an empty list means everything verified)."""
    return inspect_tree(path).problems


def inspect_tree(path: Path | str) -> Verification:
    root = Path(path)
    found = Verification()
    if not root.exists() and not root.is_symlink():
        found.problems.append(f"{root}: no such file or directory")
        return found
    if version_number(root.name) is not None and is_month_dir(root.parent):
        verify_month(root.parent, found, only=root.name)
        months = [root.parent]
    else:
        months, links = month_dirs(root)
        found.problems += links
        for month_dir in months:
            verify_month(month_dir, found)
    if not any(scan_versions(m, recorded=False) for m in months):
        found.problems.append(f"{root}: no statement version folders (v<N>/) found")
    return found


def is_month_dir(path: Path) -> bool:
    try:
        parse_month(path.name)
        validate_account_id(path.parent.name)
    except UnsafeNameError:
        return False
    return parse_month(path.name).label == path.name


def month_dirs(root: Path) -> tuple[list[Path], list[str]]:
    """Month folders at or below `root` (export dir, account or month), and the symbolic links
    met on the way (each one a problem: nothing in the tree is a link)."""
    if is_month_dir(root) and not root.is_symlink():
        return [root], []
    months: list[Path] = []
    links: list[str] = []

    def walk(directory: Path, depth: int) -> None:
        for child in sorted(directory.iterdir()):
            if child.is_symlink():
                links.append(f"{child}: is a symbolic link; nothing in the export tree may be one")
            elif not child.is_dir() or child.name.startswith("."):
                continue
            elif is_month_dir(child):
                months.append(child)
            elif depth < 1:
                walk(child, depth + 1)

    if root.is_dir():
        walk(root, 0)
    return months, links


def verify_month(month_dir: Path, found: Verification, only: str | None = None) -> None:
    """Check one month's version folders (or just `only`) and its `versions.json`."""
    for child in sorted(month_dir.iterdir()):
        if child.is_symlink() and version_number(child.name) is None:
            found.problems.append(f"{child}: is a symbolic link; remove it (publish refuses it)")
    versions = scan_versions(month_dir)
    if not versions:
        return
    index, why = read_index(month_dir)
    records = damage_records(index)
    for version in versions:
        if only is not None and version.folder.name != only:
            continue
        record = records.get(version.folder.name)
        if record is None:
            problems = list(version.damage) or verify_version(version.folder)
            found.problems += [f"{version.folder}: {p}" for p in problems]
        elif fingerprint(version.folder) == record.get("fingerprint"):
            first = (record.get("problems") or ["damaged"])[0]
            found.notes.append(
                f"{version.folder}: damaged, kept unchanged as evidence and "
                f"recorded in {VERSIONS_FILE} ({first})"
            )
        else:
            found.problems.append(
                f"{version.folder}: changed since {VERSIONS_FILE} recorded it "
                "as damaged; `ledger-etl verify --repair` records it again"
            )
    if index is None:
        found.problems.append(f"{month_dir}: {why}; {REPAIR_HINT}")
        return
    derived = index_doc(month_dir, month_dir.parent.name, month_dir.name, versions)
    found.problems += [
        f"{month_dir}: {p}; {REPAIR_HINT}" for p in index_differences(index, derived)
    ]


def index_differences(index: dict[str, Any], derived: dict[str, Any]) -> list[str]:
    """Where `versions.json` disagrees with what the folders state."""
    problems = [
        f"{VERSIONS_FILE} says {key} {index.get(key)!r}, the folders say {derived[key]!r}"
        for key in ("account_id", "month", "current_version")
        if index.get(key) != derived[key]
    ]
    listed = {str(e.get("folder")): e for e in index["versions"] if isinstance(e, dict)}
    for entry in derived["versions"]:
        stated = listed.pop(entry["folder"], None)
        if stated is None:
            problems.append(f"{VERSIONS_FILE} does not list {entry['folder']}")
            continue
        problems += [
            f"{MANIFEST_FILE} of {entry['folder']} has sha256 {entry[key]!r:.70}, "
            f"{VERSIONS_FILE} recorded {stated.get(key)!r:.70}"
            if key == "manifest_sha256"
            else f"{VERSIONS_FILE} says {entry['folder']} {key} {stated.get(key)!r:.70}, "
            f"the folder says {entry[key]!r:.70}"
            for key in INDEX_FIELDS
            if stated.get(key) != entry[key]
        ]
    problems += [f"{VERSIONS_FILE} lists {name}, which is not there" for name in sorted(listed)]
    return problems


def verify_version(folder: Path) -> list[str]:
    """Problems of one version folder (an empty list means it verified)."""
    if folder.is_symlink():
        return [f"{folder.name} is a symbolic link"]
    try:
        manifest = json.loads(read_regular(folder / MANIFEST_FILE))
        files = manifest["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not an object")
    except FileNotFoundError:
        return [f"{MANIFEST_FILE} is missing"]
    except (OSError, ValueError, KeyError, TypeError, StatementError) as exc:
        return [f"{MANIFEST_FILE} is unreadable: {exc}"]
    problems = []
    for name, meta in sorted(files.items()):
        target = folder / name
        if "/" in name or name in {"", ".", ".."} or not isinstance(meta, dict):
            problems.append(f"{MANIFEST_FILE} lists {name!r:.60}, which is not a file name")
        elif target.is_symlink():
            problems.append(f"{name} is a symbolic link")
        elif not target.is_file():
            problems.append(f"{name} is missing")
        elif target.stat().st_size != meta.get("bytes"):
            problems.append(
                f"{name} is {target.stat().st_size} bytes, manifest says {meta.get('bytes')}"
            )
        elif sha256_file(target) != meta.get("sha256"):
            problems.append(f"{name} sha256 does not match the manifest")
    extra = sorted(
        p.name for p in folder.iterdir() if p.name not in files and p.name != MANIFEST_FILE
    )
    problems += [f"{name} is not listed in the manifest" for name in extra]
    for required in (AUDIT_FILE, STATEMENT_JSON):
        if required not in files:
            problems.append(f"{required} is not listed in the manifest")
    unknown = sorted(set(files) - {AUDIT_FILE, *FILE_NAMES.values()})
    problems += [f"{MANIFEST_FILE} lists {name!r:.60}, not a statement file" for name in unknown]
    if problems:
        return problems  # what tampered files say means nothing
    return check_content(folder, manifest)
