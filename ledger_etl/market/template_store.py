"""Chart templates in the ledger: versioned by content hash, listable, exportable.

Importing content equal to the current version's (same SHA-256 of the canonical JSON) adds no
version; anything else adds version n+1 and makes it current. Returning to an earlier content
is a change too, so it becomes a new version (the history says when it came back).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, func, insert, select, update

from ledger_etl.errors import InputError
from ledger_etl.ledger import schema as s
from ledger_etl.ledger.db import upgrade
from ledger_etl.market.locks import serialize_writers
from ledger_etl.market.templates import ChartTemplate, canonical_json, validate_template


class TemplateNotFound(InputError):
    """A template name or version the ledger does not hold."""


@dataclass(frozen=True)
class ImportResult:
    name: str
    version: int
    sha256: str
    created: bool  # False: the content equals the current version's


@dataclass(frozen=True)
class TemplateSummary:
    name: str
    current_version: int
    versions: int
    sha256: str
    updated_at: datetime


@dataclass(frozen=True)
class StoredTemplate:
    name: str
    version: int
    sha256: str
    document: dict[str, Any]
    source: str | None
    imported_at: datetime


def import_template(engine: Engine, template: ChartTemplate, source: str | None) -> ImportResult:
    """Store `template` as the next version of its name, unless its content is current."""
    upgrade(engine)
    t, v, now = s.chart_templates, s.chart_template_versions, datetime.now(UTC)
    with engine.begin() as conn:
        serialize_writers(conn, "chart_templates")
        current = conn.execute(
            select(t.c.current_version).where(t.c.name == template.name)
        ).scalar()  # fmt: skip
        if current is not None:
            sha = conn.execute(
                select(v.c.content_sha256).where(and_(v.c.name == template.name,
                                                      v.c.version == current))
            ).scalar()  # fmt: skip
            if sha == template.sha256:
                return ImportResult(template.name, current, template.sha256, created=False)
        version = (current or 0) + 1
        conn.execute(insert(v).values(
            name=template.name, version=version, content_sha256=template.sha256,
            content=template.canonical, source=source, imported_at=now,
        ))  # fmt: skip
        if current is None:
            conn.execute(insert(t).values(
                name=template.name, current_version=version, created_at=now, updated_at=now
            ))  # fmt: skip
        else:
            conn.execute(update(t).where(t.c.name == template.name)
                         .values(current_version=version, updated_at=now))  # fmt: skip
    return ImportResult(template.name, version, template.sha256, created=True)


def list_templates(engine: Engine) -> list[TemplateSummary]:
    upgrade(engine)
    t, v = s.chart_templates, s.chart_template_versions
    counts = select(v.c.name, func.count().label("versions")).group_by(v.c.name).subquery("counts")
    query = (
        select(t.c.name, t.c.current_version, t.c.updated_at, counts.c.versions,
               v.c.content_sha256)
        .join(counts, counts.c.name == t.c.name)
        .join(v, and_(v.c.name == t.c.name, v.c.version == t.c.current_version))
        .order_by(t.c.name)
    )  # fmt: skip
    with engine.connect() as conn:
        return [
            TemplateSummary(r.name, r.current_version, r.versions, r.content_sha256, r.updated_at)
            for r in conn.execute(query)
        ]


def get_template(engine: Engine, name: str, version: int | None = None) -> StoredTemplate:
    """A stored version (the current one by default); its hash is checked on the way out."""
    upgrade(engine)
    t, v = s.chart_templates, s.chart_template_versions
    with engine.connect() as conn:
        current = conn.execute(select(t.c.current_version).where(t.c.name == name)).scalar()
        if current is None:
            known = ", ".join(repr(n) for n in conn.execute(select(t.c.name)).scalars())
            raise TemplateNotFound(f"no template {name!r}; the ledger holds {known or 'none'}")
        wanted = current if version is None else version
        row = conn.execute(
            select(v).where(and_(v.c.name == name, v.c.version == wanted))
        ).first()  # fmt: skip
    if row is None:
        raise TemplateNotFound(f"template {name!r} has no version {wanted} (1..{current})")
    document = json.loads(row.content)
    checked = validate_template(document, f"{name} v{wanted} in the ledger")
    if checked.sha256 != row.content_sha256 or canonical_json(document) != row.content:
        raise TemplateNotFound(
            f"template {name!r} v{wanted} in the ledger does not match its recorded hash"
        )
    return StoredTemplate(name, wanted, row.content_sha256, document, row.source, row.imported_at)


def template_versions(engine: Engine, name: str) -> list[tuple[int, str, datetime]]:
    """(version, sha256, imported_at) of every version of `name`, oldest first."""
    v = s.chart_template_versions
    query = select(v.c.version, v.c.content_sha256, v.c.imported_at).where(v.c.name == name)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(query.order_by(v.c.version))]
    if not rows:
        raise TemplateNotFound(f"no template {name!r}")
    return rows  # type: ignore[return-value]
