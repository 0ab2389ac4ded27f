"""Recovery of intents in doubt: sent, or maybe sent, with no final answer recorded.

Recovery never posts again. With a deal reference, the confirm decides. Without one (the process
died between the POST and storing its answer, or the answer was lost), the deals now on the epic
are compared with the deals stored before the POST: a new deal of the intent's direction and
size that no other intent claims is this intent's (ACCEPTED); an epic with no change at all was
not dealt (REJECTED, once the grace period has passed); anything else is left UNKNOWN.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select

from ledger_etl.capital.errors import CapitalError
from ledger_etl.ledger.schema import trade_intents

from . import store
from .broker import Broker, Deal
from .intake import order_from_json

log = logging.getLogger("ledger_etl.intents")


class RecoveryMixin:
    """The executor's recovery steps (mixed into `Executor`, which provides the rest)."""

    engine: Engine
    broker: Broker
    clock: Callable[[], datetime]
    recovery_grace: timedelta
    _move: Callable[..., Any]
    _confirm: Callable[[Any, str], bool]

    def _recover(self, row: Any) -> bool:
        """Resolve an intent in doubt from the broker's state; True when it was resolved."""
        if row.state == "SUBMITTED":
            row = self._move(row, "SUBMITTED", "UNKNOWN", reason="recovering after a restart")
        try:
            if row.deal_reference and row.action in ("buy", "sell"):
                return self._confirm(row, row.deal_reference)
            deals = self.broker.deals(row.account_id, orders=needs_orders(row))
        except CapitalError as error:
            log.warning("recovery of intent %s postponed: %s", row.id, error)
            return False
        if row.action in ("buy", "sell"):
            return self._recover_open(row, deals)
        return self._recover_close(row, deals)

    def _recover_open(self, row: Any, deals: list[Deal]) -> bool:
        order = order_from_json(row.order_request)
        before = {d["deal_id"]: d for d in row.pre_deals or []}
        claimed = claimed_deal_ids(self.engine, row.account_id, row.id)
        new = [
            d
            for d in deals
            if d.epic == order.epic
            and d.deal_id not in before
            and d.deal_id not in claimed
            and d.direction == order.direction
            and d.size == order.size
        ]
        if new:
            deal = new[0]
            ids = [i for i in (deal.working_order_id, deal.deal_id) if i]
            values = {"deal_ids": ids, "confirmed_at": self.clock()}
            if deal.kind == "position":
                values.update(slippage(row, deal.level))
            self._move(
                row,
                "UNKNOWN",
                "ACCEPTED",
                reason=f"recovered: {deal.kind} {deal.deal_id} appeared after the request",
                **values,
            )
            return True
        now_on_epic = {d.deal_id: _shape(d.as_json()) for d in deals if d.epic == order.epic}
        unchanged = now_on_epic == {i: _shape(d) for i, d in before.items()}
        if unchanged and self.clock() - row.submitted_at >= self.recovery_grace:
            self._move(
                row,
                "UNKNOWN",
                "REJECTED",
                reason="recovered: not dealt (no change at "
                "the broker after the lost answer); not re-sent",
            )
            return True
        return False

    def _recover_close(self, row: Any, deals: list[Deal]) -> bool:
        present = {d.deal_id for d in deals}
        targets = [d["deal_id"] for d in row.pre_deals or []]
        gone = [t for t in targets if t not in present]
        if gone:
            self._move(
                row,
                "UNKNOWN",
                "ACCEPTED",
                deal_ids=gone,
                confirmed_at=self.clock(),
                reason=f"recovered: {len(gone)} of {len(targets)} deals gone",
            )
            return True
        if self.clock() - row.submitted_at >= self.recovery_grace:
            self._move(row, "UNKNOWN", "REJECTED", reason="recovered: the deals are still open")
            return True
        return False


def _shape(deal: dict[str, Any]) -> tuple[str, str, Decimal]:
    """What an order of ours would change about a deal on its epic: that it exists, its side and
    its size (a netting order reduces it). Not the level's text nor the order id it came from:
    a deal the executor added to its view from a confirm may spell those differently."""
    return deal["kind"], deal["direction"], Decimal(deal["size"])


def needs_orders(row: Any) -> bool:
    """Working orders matter to cancels and to limit/stop orders, not to market orders."""
    order_type = (row.order_request or {}).get("order_type")
    return row.action == "cancel" or order_type not in (None, "MARKET")


def slippage(row: Any, filled: Decimal | None) -> dict[str, Any]:
    intended = row.intended_level
    if filled is None or intended is None:
        return {"filled_level": filled}
    sign = 1 if row.action == "buy" else -1
    return {"filled_level": filled, "slippage": (filled - intended) * sign}


def claimed_deal_ids(engine: Engine, account_id: str, except_id: str) -> set[str]:
    c = trade_intents.c
    with store.connect(engine) as conn:
        rows = conn.execute(
            select(c.deal_ids).where(c.account_id == account_id, c.id != except_id)
        ).all()
    return {d for r in rows for d in (r.deal_ids or [])}
