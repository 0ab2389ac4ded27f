"""The executor's view of an account's deals between two reads of the broker.

Before each POST the risk caps need the live exposure, and recovery needs the epic's deals as
they were. Reading `/positions` (and `/workingorders`) before every order would cost a request
of the broker's 10 per second each time; instead one read serves for `MAX_AGE_S`, and what the
executor itself dealt in the meantime is added to it from each confirm. Anything the executor
cannot model exactly (a close, a cancel, an answer in doubt, a confirm that netted or amended
deals) drops the view, and the next intent reads the broker again. Deals changed by someone
else show up at the next read at the latest, `MAX_AGE_S` later. A deal added from a confirm has
no upl: with a daily loss cap (which counts it) the executor reads the broker before every order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ledger_etl.capital.trading_models import Confirm

from .broker import Deal

MAX_AGE_S = 1.0

Key = tuple[str, bool]  # (account, with working orders)


class DealsView:
    def __init__(
        self, max_age_s: float = MAX_AGE_S, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_age_s = max_age_s
        self._monotonic = monotonic
        self._views: dict[Key, tuple[float, list[Deal]]] = {}

    def get(self, key: Key) -> list[Deal] | None:
        found = self._views.get(key)
        if found is None or self._monotonic() - found[0] >= self.max_age_s:
            return None
        return list(found[1])

    def put(self, key: Key, deals: list[Deal]) -> None:
        self._views[key] = (self._monotonic(), list(deals))

    def forget(self, account_id: str) -> None:
        for key in [k for k in self._views if k[0] == account_id]:
            del self._views[key]

    def dealt(self, account_id: str, request: dict[str, Any], confirm: Confirm) -> None:
        """An order of this executor was confirmed: add what it opened, or drop the view."""
        if not confirm.accepted:
            return  # rejected: nothing changed at the broker
        deal = _opened(request, confirm)
        if deal is None:
            self.forget(account_id)
            return
        for key, (read, deals) in list(self._views.items()):
            if key[0] == account_id and (deal.kind == "position" or key[1]):
                self._views[key] = (read, [*deals, deal])


def _opened(request: dict[str, Any], confirm: Confirm) -> Deal | None:
    """The deal an accepted open created, when the confirm says exactly that."""
    epic = confirm.epic or request.get("epic")
    direction = confirm.direction or request.get("direction")
    size = confirm.size if confirm.size is not None else _decimal(request.get("size"))
    level = confirm.level
    if not (epic and direction and size is not None and level is not None and confirm.deal_id):
        return None
    affected = confirm.affected_deals
    if request.get("order_type") not in (None, "MARKET"):
        if affected:  # a working order that opened or amended something at once
            return None
        return Deal(confirm.deal_id, "order", epic, direction, size, level)
    if len(affected) != 1 or affected[0].status != "OPENED":
        return None  # netted against an opposite position, or something else: read again
    return Deal(
        affected[0].deal_id, "position", epic, direction, size, level, None, confirm.deal_id
    )


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))
