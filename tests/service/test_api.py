"""The read API over real HTTP on both backends: statements, files, ledger queries, audit."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

from openpyxl import load_workbook
from sqlalchemy import select

from ledger_etl.ledger import schema as s
from tests.service.conftest import Running
from tests.service.world import FIRST, FORMULA_NOTE, SECOND, THIRD

D = Decimal


def test_health_and_openapi_need_no_token(service: Running) -> None:
    with service.client(None) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        paths = http.get("/openapi.json").json()["paths"]
    assert {"/api/accounts", "/api/statements", "/api/ledger/entries", "/api/audit"} <= set(paths)
    assert "/api/statements/{account}/{month}/v{version}/{file}" in paths


def test_accounts_are_those_in_scope(service: Running) -> None:
    with service.client("ann") as ann, service.client("root") as root:
        mine = ann.get("/api/accounts").json()["accounts"]
        every = root.get("/api/accounts").json()["accounts"]
    assert mine == [{"account_id": FIRST, "months": ["2025-06", "2025-07"]}]
    assert [a["account_id"] for a in every] == [FIRST, SECOND, THIRD]


def test_statement_listing_has_versions_status_reconciliation_and_totals(
    service: Running,
) -> None:
    with service.client("ann") as ann:
        listing = ann.get("/api/statements", params={"account": FIRST}).json()["statements"]
        june = ann.get("/api/statements", params={"month": "2025-06"}).json()["statements"]
    by_month = {item["month"]: item for item in listing}
    assert set(by_month) == {"2025-06", "2025-07"}
    assert [item["account_id"] for item in june] == [FIRST]
    first = by_month["2025-06"]
    assert first["current_version"] == 2
    assert [v["version"] for v in first["versions"]] == [1, 2]
    assert [v["superseded_by"] for v in first["versions"]] == [2, None]
    assert first["status"] == "FINAL"
    assert first["reconciliation"]["status"] == "RECONCILED"
    assert first["totals"]["closing_balance"] == "1197.00"
    assert first["versions"][0]["totals"]["closing_balance"] == "1194.00"
    assert by_month["2025-07"]["status"] == "PROVISIONAL"


def test_latest_and_given_version_with_the_diff_when_superseded(service: Running) -> None:
    with service.client("ann") as ann:
        latest = ann.get(f"/api/statements/{FIRST}/2025-06").json()
        first = ann.get(f"/api/statements/{FIRST}/2025-06/v1").json()
    assert latest["version"] == 2 and latest["current"] is True
    assert latest["superseded_by"] is None
    assert latest["diff"]["added"] == ["z9"]
    assert first["version"] == 1 and first["current"] is False
    assert first["superseded_by"]["version"] == 2
    assert first["superseded_by"]["diff"]["added"] == ["z9"]
    header = latest["statement"]
    assert "entries" not in header
    assert {t["key"] for t in header["totals_by_type"]} == {"DEPOSIT", "SWAP", "TRADE"}
    assert header["opening_balance"] == "1000.00" and header["closing_balance"] == "1197.00"


def test_files_are_the_published_bytes_with_etag_and_filename(service: Running) -> None:
    folder = service.world.export_root / FIRST / "2025-06" / "v2"
    manifest = json.loads((folder / "manifest.json").read_bytes())
    with service.client("ann") as ann:
        for name in ("statement.csv", "statement.xlsx", "statement.json", "statement.pdf"):
            response = ann.get(f"/api/statements/{FIRST}/2025-06/v2/{name}")
            assert response.status_code == 200, (name, response.text)
            published = (folder / name).read_bytes()
            assert response.content == published
            sha = hashlib.sha256(published).hexdigest()
            assert sha == manifest["files"][name]["sha256"]
            assert response.headers["etag"] == f'"{sha}"'
            assert (
                f'filename="{FIRST}_2025-06_v2_{name}"' in response.headers["content-disposition"]
            )
        again = ann.get(
            f"/api/statements/{FIRST}/2025-06/v2/statement.csv",
            headers={"If-None-Match": f'"{sha}"'},
        )
        assert again.status_code in (200, 304)
        missing = ann.get(f"/api/statements/{FIRST}/2025-06/v2/statement.docx")
        assert missing.status_code == 404


def _all_pages(http, **params) -> list[dict]:
    rows, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        body = http.get("/api/ledger/entries", params=query).json()
        rows += body["entries"]
        cursor = body["next_cursor"]
        if cursor is None:
            return rows


def test_ledger_query_filters_by_range_and_type_and_pages_by_cursor(service: Running) -> None:
    e = s.ledger_entries
    with service.world.engine.connect() as conn:
        stored = conn.execute(
            select(e.c.reference, e.c.posted_at, e.c.transaction_type, e.c.amount).where(
                e.c.account_id == FIRST
            )
        ).all()
    params = {
        "account": FIRST,
        "from": "2025-06-01T06:00:00Z",
        "to": "2025-06-02",
        "type": "TRADE,SWAP",
    }
    with service.client("ann") as ann:
        rows = _all_pages(ann, limit=7, **params)
        one_page = ann.get("/api/ledger/entries", params={**params, "limit": 1000}).json()
    want = sorted(
        (r.posted_at, r.reference)
        for r in stored
        if r.transaction_type in ("TRADE", "SWAP")
        and datetime(2025, 6, 1, 6, tzinfo=UTC) <= r.posted_at < datetime(2025, 6, 2, tzinfo=UTC)
    )
    assert len(want) > 7  # more than one page
    assert [r["reference"] for r in rows] == [ref for _, ref in want]
    assert rows == one_page["entries"] and one_page["next_cursor"] is None
    amounts = {r.reference: r.amount for r in stored}
    assert all(D(r["amount"]) == amounts[r["reference"]] for r in rows)


def test_ledger_csv_and_xlsx_exports_are_exact_and_formula_safe(service: Running) -> None:
    with service.client("ann") as ann:
        csv_body = ann.get("/api/ledger/entries", params={"account": FIRST, "format": "csv"})
        xlsx_body = ann.get("/api/ledger/entries", params={"account": FIRST, "format": "xlsx"})
        json_rows = _all_pages(ann, account=FIRST, limit=1000)
    assert csv_body.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(csv_body.text)))
    assert len(table) == len(json_rows) == 60
    by_ref = {r["reference"]: r for r in table}
    assert by_ref[f"{FIRST}-0000005"]["amount"] == "-12.34567891"
    assert by_ref[f"{FIRST}-0000003"]["note"] == "'" + FORMULA_NOTE
    assert [r["amount"] for r in table] == [r["amount"] for r in json_rows]
    sheet = load_workbook(io.BytesIO(xlsx_body.content), read_only=True)["Entries"]
    cells = list(sheet.iter_rows(values_only=True))
    heading, body = cells[0], cells[1:]
    assert len(body) == 60
    amount_at, note_at = heading.index("amount"), heading.index("note")
    assert [D(repr(r[amount_at])) for r in body] == [D(r["amount"]) for r in json_rows]
    notes = [r[note_at] for r in body if len(r) > note_at and r[note_at]]
    assert notes == ["'" + FORMULA_NOTE]


def test_bad_filters_are_400_with_a_reason(service: Running) -> None:
    with service.client("ann") as ann:
        for params in (
            {"account": FIRST, "from": "June"},
            {"account": FIRST, "from": "2025-07-01", "to": "2025-06-01"},
            {"account": FIRST, "type": "TRADE;DROP"},
            {"account": FIRST, "cursor": "not-a-cursor"},
            {"account": FIRST, "format": "docx"},
            {"account": FIRST, "limit": "0"},
        ):
            response = ann.get("/api/ledger/entries", params=params)
            assert response.status_code == 400, (params, response.text)
            assert response.json()["detail"]


def test_every_read_is_audited_with_user_sha256_and_client(service: Running) -> None:
    path = f"/api/statements/{FIRST}/2025-06/v1/statement.csv"
    with service.client("ann") as ann, service.client("root") as root, service.client("bob") as bob:
        served = ann.get(path)
        assert bob.get(path).status_code == 404
        reads = root.get("/api/audit", params={"limit": 1000}).json()["reads"]
        assert bob.get("/api/audit").status_code == 403
    sha = hashlib.sha256(served.content).hexdigest()
    # The service is shared by the package's tests: only this test's two users' reads count.
    mine = [r for r in reads if r["path"] == path and r["user"] in ("ann", "bob")]
    assert {(r["user"], r["status"], r["sha256"], r["outcome"]) for r in mine} >= {
        ("ann", 200, sha, "served"),
        ("bob", 404, None, "not_found"),
    }
    assert all(r["client"] == "127.0.0.1" and r["account_id"] == FIRST for r in mine)
    assert all(r["at"].endswith("Z") for r in reads)
