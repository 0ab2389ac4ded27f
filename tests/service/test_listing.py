"""`GET /api/statements` under load: listings kept between requests still show every change on
disk at the next request, and concurrent requests each get their audit row before their answer."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from decimal import Decimal

import pytest

from ledger_etl.service import listing
from ledger_etl.statements.build import build_statement
from ledger_etl.statements.export import publish_built
from tests.service.conftest import Running
from tests.service.world import FIRST
from tests.unit.test_statements_build import entry, inputs

RACY = 0.2  # seconds: files this young are not trusted to the cache (shortened for the test)


def _june(http) -> dict:
    response = http.get("/api/statements", params={"account": FIRST, "month": "2025-06"})
    assert response.status_code == 200, response.text
    (item,) = response.json()["statements"]
    return item


def test_a_kept_listing_shows_a_new_version_and_an_edit_in_place_at_once(
    own_service: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "RACY_SECONDS", RACY)
    root = own_service.world.export_root
    with own_service.client("ann") as http:
        time.sleep(RACY + 0.1)
        assert _june(http)["current_version"] == 2  # read, and now kept
        assert _june(http)["current_version"] == 2  # from the cache
        base = inputs()
        later = (*base.entries, entry("z9", 25, "3.00"), entry("z8", 26, "1.00"))
        changed = replace(base, entries=later, balance_at_end=base.balance_at_end + Decimal(4))
        publish_built(build_statement(changed), root, run_id="r9",
                      formats=("json", "csv"))  # fmt: skip
        third = _june(http)
        assert third["current_version"] == 3
        assert [v["version"] for v in third["versions"]] == [1, 2, 3]
        time.sleep(RACY + 0.1)
        assert _june(http) == third  # kept again
        # An edit in place (no rename, so the month folder is unchanged) of v3's manifest.
        manifest = root / FIRST / "2025-06" / "v3" / "manifest.json"
        doc = json.loads(manifest.read_text())
        doc["status"] = "EDITED"
        os.chmod(manifest, 0o640)
        with manifest.open("r+") as handle:
            handle.write(json.dumps(doc))
            handle.truncate()
        assert _june(http) != third


def test_concurrent_listings_are_each_audited_before_they_are_answered(
    own_service: Running,
) -> None:
    with own_service.client("ann") as ann, own_service.client("root") as root:
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: ann.get("/api/statements").status_code, range(40)))
        assert codes == [200] * 40
        reads = root.get("/api/audit", params={"user": "ann", "limit": 1000}).json()["reads"]
    assert len([r for r in reads if r["path"] == "/api/statements"]) == 40
    assert {(r["status"], r["outcome"]) for r in reads} == {(200, "served")}
