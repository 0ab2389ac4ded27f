"""Our own dealing requests in the lifecycle: the submission before the POST (PENDING under its
dealReference) and the confirm after it (ACCEPTED / OPEN under the broker's dealId, or
REJECTED with the reason). A confirm that names no new deal (a close, a netting reduction)
folds the pending request into the deal it affected."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from ledger_etl.capital.trading_models import Confirm

from .events import confirm_events
from .lifecycle import Event
from .snapshots import jsonable
from .tracker import LifecycleTracker


def record_submission(
    engine: Engine,
    account_id: str,
    reference: str,
    kind: str,
    intended: dict[str, Any],
    at: datetime,
) -> None:
    """Record a request as PENDING under `reference` (call it right after the POST answers)."""
    event = Event(
        reference, kind, "submitted", at, "submission", jsonable(intended), f"submitted:{reference}"
    )
    with engine.begin() as conn:
        tracker = LifecycleTracker(conn, account_id)
        tracker.apply([event])
        tracker.flush(at)


def record_confirm(
    engine: Engine, account_id: str, confirm: Confirm, kind: str, at: datetime
) -> list[str]:
    """Apply a confirm; returns the dealIds it touched."""
    reference = confirm.deal_reference
    events = confirm_events(confirm, kind, reference)
    with engine.begin() as conn:
        tracker = LifecycleTracker(conn, account_id)
        pending = tracker.deal(reference, kind)
        touched = [e.deal_id for e in events]
        affected = [d.deal_id for d in confirm.affected_deals]
        target = events[0].deal_id if events else (affected[0] if affected else None)
        if pending.state == "PENDING" and confirm.accepted and target not in (None, reference):
            tracker.adopt(reference, target)
        tracker.apply(events)
        tracker.flush(at)
    return touched
