"""`/api/audit`: the read audit, for admins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from ledger_etl.service.audit import list_reads
from ledger_etl.service.auth import bearer_user, require_role
from ledger_etl.service.users import User

router = APIRouter(prefix="/api", tags=["audit"])


@router.get("/audit")
def audit(
    request: Request,
    user: Annotated[User, Depends(bearer_user)],
    who: Annotated[str | None, Query(alias="user", pattern=r"^[A-Za-z0-9_.@-]{1,64}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """Audit rows, newest first; `before` (an id) pages back."""
    require_role(request, user, "admin")
    rows = list_reads(request.app.state.service.reads, user=who, limit=limit, before_id=before)
    return {"reads": rows, "next_before": rows[-1]["id"] if len(rows) == limit else None}
