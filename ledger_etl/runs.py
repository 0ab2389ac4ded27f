"""Run ids: one format for every run the ledger records, fetches and publishes alike."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

RUN_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{12}$")


def new_run_id(now: datetime | None = None) -> str:
    """`YYYYMMDDTHHMMSSZ-<12 hex>`: sortable by start time, unique without coordination."""
    return f"{(now or datetime.now(UTC)).astimezone(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}"
