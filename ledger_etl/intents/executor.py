"""The executor: takes VALIDATED intents from the durable queue and sends each exactly once.

One executor per ledger database (it is the only writer of SUBMITTED). For each intent, in
order: the live state is read (positions and working orders), the risk caps are checked, and
then, in dry-run, the intent ends DRY_RUN; live, it is moved to SUBMITTED (committed, with the
epic's deals as they were) *before* the POST. The answer decides the rest:
- a deal reference: stored, then `/confirms/{ref}` is polled with backoff to ACCEPTED/REJECTED;
- a 429: nothing was dealt; the intent is queued again after the order spacing, never re-sent
  on the spot;
- another 4xx: REJECTED with the broker's errorCode;
- no usable answer (timeout, reset, 5xx): UNKNOWN, then recovered.

Recovery (`recovery.py`) never posts again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError

from ledger_etl.capital.errors import ApiError, CapitalError
from ledger_etl.capital.trading_models import Confirm
from ledger_etl.ledger.db import checkpoint_wal
from ledger_etl.ledger.faultpoints import checkpoint
from ledger_etl.ledger.schema import trade_intents
from ledger_etl.trading.requests import record_confirm, record_submission

from . import risk, store
from .broker import Broker, BrokerInDoubt, BrokerRefused, Deal
from .dealsview import DealsView
from .intake import order_from_json
from .recovery import RecoveryMixin, needs_orders, slippage

log = logging.getLogger("ledger_etl.intents")
ORDER_SPACING_S = 0.1  # the broker refuses a second order request within 0.1 s
RECOVERY_GRACE = timedelta(seconds=5)
MAX_RESCHEDULE_S = 5.0
REFRESH_EVERY_S = 1.0
CHECKPOINT_EVERY_S = 1.0
DRY_RUN_REASON = "dry run: validated, not sent"
DRY_RUN_BATCH = ("dry_run",)


def _now() -> datetime:
    return datetime.now(UTC)


class Executor(RecoveryMixin):
    def __init__(
        self,
        engine: Engine,
        broker: Broker,
        caps: risk.Caps,
        *,
        live: bool,
        clock: Callable[[], datetime] = _now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.engine = engine
        self.broker = broker
        self.caps = caps
        self.live = live
        self.clock = clock
        self.sleep = sleep
        self._last_send = 0.0
        self._last_refresh = 0.0
        self._last_checkpoint = 0.0
        self.warm_epics: list[str] = []  # read at start (`warm`); set by the runner
        self.view = DealsView()
        # How long an unchanged broker state must stay unchanged before "not dealt" is concluded.
        self.recovery_grace = RECOVERY_GRACE

    # -- the loop ---------------------------------------------------------------------------
    def run(self, stop: threading.Event, idle_s: float = 0.02) -> None:
        """Recover what a previous process left in doubt, read the markets the webhook will
        be asked about (`warm_epics`), then serve the queue until `stop`."""
        self.recover_all()
        self.warm(stop)
        while not stop.is_set():
            try:
                worked = self.run_once()
            except Exception:  # a broker or database outage must not end the executor
                log.exception("intents executor step failed; retrying")
                worked = 0
                stop.wait(1.0)
            self._checkpoint()
            if not worked:
                self._refresh()
                stop.wait(idle_s)

    def warm(self, stop: threading.Event) -> None:
        """Cache the dealing rules of `warm_epics` (allowed epics, the symbol map's markets and
        those of the last week's intents), so the first webhooks after a start are judged
        from the cache in one short transaction instead of waiting for the broker."""
        market = getattr(self.broker, "market", None)
        for epic in self.warm_epics:
            if stop.is_set() or market is None:
                return
            try:
                market(epic)
            except CapitalError as error:
                log.warning("could not read market %s at start: %s", epic, error)

    def _checkpoint(self) -> None:
        """Once a second, a passive WAL checkpoint on SQLite, here rather than in the commit of
        whichever webhook request crossed the WAL's size limit (`db.defer_checkpoints`)."""
        if time.monotonic() - self._last_checkpoint < CHECKPOINT_EVERY_S:
            return
        self._last_checkpoint = time.monotonic()
        try:
            checkpoint_wal(self.engine)
        except OperationalError as error:
            log.warning("WAL checkpoint failed: %s", error)

    def _refresh(self) -> None:
        """Idle time: keep the markets the webhook judges by cached (it never waits for them)."""
        refresh = getattr(self.broker, "refresh", None)
        if refresh is None or time.monotonic() - self._last_refresh < REFRESH_EVERY_S:
            return
        self._last_refresh = time.monotonic()
        try:
            refresh()
        except CapitalError as error:
            log.warning("could not refresh the market details: %s", error)

    def run_once(self) -> int:
        worked = 0
        with _AccountScopes(self.broker) as scopes:
            for row in store.in_doubt(self.engine):
                scopes.enter(row.account_id)
                if row.state == "UNKNOWN" and self._recover(row):
                    worked += 1
            modes = ("dry_run", "live") if self.live else ("dry_run",)
            # Intents that will not be sent change nothing at the broker: one read of an
            # account's deals serves all of them in this batch. One that is sent uses the
            # executor's view (`dealsview`): a read at most a second old plus its own deals.
            snapshots: dict[Any, Any] = {}
            for row in store.due(self.engine, self.clock(), modes):
                scopes.enter(row.account_id)
                self.process(row, None if self._sends(row) else snapshots)
                worked += 1
            store.move_many(
                self.engine,
                snapshots.get(DRY_RUN_BATCH, []),
                "VALIDATED",
                "DRY_RUN",
                self.clock(),
                reason=DRY_RUN_REASON,
            )
        return worked

    def recover_all(self) -> None:
        with _AccountScopes(self.broker) as scopes:
            for row in store.in_doubt(self.engine):
                scopes.enter(row.account_id)
                self._recover(row)

    # -- one intent ---------------------------------------------------------------------------
    def _sends(self, row: Any) -> bool:
        return self.live and row.mode == "live"

    def process(self, row: Any, snapshots: dict[Any, Any] | None = None) -> None:
        now = self.clock()
        try:
            key = (row.account_id, needs_orders(row))
            if snapshots is not None and key in snapshots:
                deals = snapshots[key]
            elif (
                snapshots is None and self._may_reuse() and (seen := self.view.get(key)) is not None
            ):
                deals = seen
            else:
                deals = self.broker.deals(row.account_id, orders=key[1])
                if snapshots is not None:
                    snapshots[key] = deals
                else:
                    self.view.put(key, deals)
            breaches = (
                self._breaches(row, deals, now, snapshots) if row.action in ("buy", "sell") else []
            )
        except ApiError as error:
            if 400 <= error.status < 500 and error.status != 429:
                reason = f"the broker refused the account: {error.error_code or error.status}"
                self._move(row, "VALIDATED", "REJECTED", reason=reason)
                return
            self._requeue(row, f"the broker could not be read: {error}")
            return
        except CapitalError as error:
            self._requeue(row, f"the broker could not be read: {error}")
            return
        if breaches:
            found = [b.as_dict() for b in breaches]
            reason = "risk: " + "; ".join(f"{b.rule}: {b.detail}" for b in breaches)
            self._move(row, "VALIDATED", "REJECTED", reason=reason, violations=found)
            return
        if not self._sends(row):
            # An intent received in dry run is never sent, even by a later live executor.
            if snapshots is not None:  # recorded with the rest of the batch, in one transaction
                snapshots.setdefault(DRY_RUN_BATCH, []).append(row)
            else:
                self._move(row, "VALIDATED", "DRY_RUN", reason=DRY_RUN_REASON)
            return
        if row.action in ("buy", "sell"):
            self._open(row, deals)
        else:
            self._close_or_cancel(row, deals)

    def _may_reuse(self) -> bool:
        """A daily loss cap counts the open deals' upl as the broker states it now: with one,
        the deals are read before every order instead of taken from the view."""
        return self.caps.daily_loss_cap is None

    def _requeue(self, row: Any, reason: str) -> None:
        later = self.clock() + timedelta(seconds=1)
        store.annotate(self.engine, row.id, self.clock(), next_attempt_at=later, reason=reason)

    def _breaches(
        self, row: Any, deals: list[Deal], now: datetime, batch: dict[Any, Any] | None = None
    ) -> list[Any]:
        order = order_from_json(row.order_request)
        markets = {e: self.broker.market(e) for e in {d.epic for d in deals} | {order.epic}}
        known = {e: m for e, m in markets.items() if m is not None}
        if order.epic not in known:
            return [risk.Violation("epic", "known_market", f"no market {order.epic}")]
        currency = self.broker.account_currency(row.account_id) or ""
        rates = {}
        for m in known.values():
            if m.currency and m.currency != currency and m.currency not in rates:
                rate = self.broker.fx_rate(m.currency, currency)
                if rate is not None:
                    rates[m.currency] = rate
        # Intents not sent change none of the account's figures: one read serves the batch.
        figures = None if batch is None else batch.get(("figures", row.account_id))
        if figures is None:
            figures = (
                *today_from_intents(self.engine, row.account_id, now),
                store.sent_since(self.engine, row.account_id, now - timedelta(minutes=1)),
            )
            if batch is not None:
                batch[("figures", row.account_id)] = figures
        realized, opened_today, sent_last_minute = figures
        state = risk.LiveState(
            row.account_id,
            currency,
            self.broker_balance(row.account_id),
            deals,
            known,
            rates,
            sent_last_minute,
            realized,
            opened_today,
        )
        return risk.check(self.caps, order, known[order.epic], state, now)

    def broker_balance(self, account_id: str) -> Decimal | None:
        getter = getattr(self.broker, "balance", None)
        return getter(account_id) if getter else None

    def _pace(self) -> None:
        wait = ORDER_SPACING_S - (time.monotonic() - self._last_send)
        if wait > 0:
            self.sleep(wait)
        self._last_send = time.monotonic()

    def _open(self, row: Any, deals: list[Deal]) -> None:
        order = order_from_json(row.order_request)
        pre = [d.as_json() for d in deals if d.epic == order.epic]
        now = self.clock()
        row = self._move(
            row,
            "VALIDATED",
            "SUBMITTED",
            pre_deals=pre,
            submitted_at=now,
            attempts=row.attempts + 1,
            next_attempt_at=None,
        )
        self._pace()
        working = order.order_type != "MARKET"
        try:
            if working:
                reference = self.broker.create_working_order(row.account_id, order)
            else:
                reference = self.broker.open_position(row.account_id, order)
        except BrokerRefused as refused:
            self._refused(row, refused)
            return
        except BrokerInDoubt as doubt:
            self.view.forget(row.account_id)
            row = self._move(row, "SUBMITTED", "UNKNOWN", reason=f"no answer: {doubt}")
            self._recover(row)
            return
        checkpoint("intent_after_post")
        store.annotate(self.engine, row.id, self.clock(), deal_reference=reference)
        kind = "order" if working else "position"
        _lifecycle(
            record_submission,
            self.engine,
            row.account_id,
            reference,
            kind,
            row.order_request,
            self.clock(),
        )
        checkpoint("intent_before_confirm")
        self._confirm(store.get(self.engine, row.id), reference)

    def _refused(self, row: Any, refused: BrokerRefused) -> None:
        if refused.rate_limited:
            delay = min(ORDER_SPACING_S * (2 ** min(row.attempts - 1, 6)), MAX_RESCHEDULE_S)
            later = self.clock() + timedelta(seconds=delay)
            self._move(
                row,
                "SUBMITTED",
                "VALIDATED",
                next_attempt_at=later,
                submitted_at=None,
                reason=f"rate limited ({refused.code}); queued again, not re-sent",
            )
            return
        self._move(row, "SUBMITTED", "REJECTED", reason=f"refused by the broker: {refused.code}")

    def _confirm(self, row: Any, reference: str) -> bool:
        try:
            confirm = self.broker.confirm(row.account_id, reference)
        except CapitalError as error:
            confirm, why = None, str(error)
        else:
            why = "no confirm yet"
        if confirm is None:
            self.view.forget(row.account_id)
            if row.state == "SUBMITTED":
                self._move(row, "SUBMITTED", "UNKNOWN", reason=why)
            return False
        self._finish(row, confirm)
        return True

    def _finish(self, row: Any, confirm: Confirm) -> None:
        ids = [i for i in [confirm.deal_id, *(d.deal_id for d in confirm.affected_deals)] if i]
        values: dict[str, Any] = {
            "confirm": confirm.model_dump(mode="json", by_alias=True, exclude_none=True),
            "confirmed_at": self.clock(),
            "deal_ids": list(dict.fromkeys(ids)),
        }
        if confirm.accepted:
            values.update(slippage(row, confirm.level))
            target, reason = "ACCEPTED", None
        else:
            target = "REJECTED"
            reason = f"rejected by the broker: {confirm.reject_reason or confirm.reason}"
        self._move(row, row.state, target, reason=reason, **values)
        if row.state == "SUBMITTED":
            self.view.dealt(row.account_id, row.order_request or {}, confirm)
        else:  # recovered: a read since the answer was lost may show the deal already
            self.view.forget(row.account_id)
        kind = (
            "order"
            if (row.order_request or {}).get("order_type") not in (None, "MARKET")
            else "position"
        )
        _lifecycle(record_confirm, self.engine, row.account_id, confirm, kind, self.clock())

    # -- close / cancel -------------------------------------------------------------------------
    def _close_or_cancel(self, row: Any, deals: list[Deal]) -> None:
        request = row.order_request or {}
        kind = "position" if row.action == "close" else "order"
        targets = [
            d
            for d in deals
            if d.kind == kind
            and d.epic == request.get("epic")
            and request.get("deal_id") in (None, d.deal_id)
        ]
        if not targets:
            self._move(row, "VALIDATED", "REJECTED", reason=f"no open {kind} to {row.action}")
            return
        self.view.forget(row.account_id)
        pre = [d.as_json() for d in targets]
        row = self._move(
            row,
            "VALIDATED",
            "SUBMITTED",
            pre_deals=pre,
            submitted_at=self.clock(),
            attempts=row.attempts + 1,
            next_attempt_at=None,
        )
        confirms, problems = [], []
        for deal in targets:
            call = self.broker.close_position if kind == "position" else self.broker.cancel_order
            try:
                reference = call(row.account_id, deal.deal_id)
            except (BrokerRefused, BrokerInDoubt) as error:
                problems.append(f"{deal.deal_id}: {error}")
                continue
            confirm = self.broker.confirm(row.account_id, reference)
            if confirm is not None:
                confirms.append(confirm)
                _lifecycle(record_confirm, self.engine, row.account_id, confirm, kind, self.clock())
        self._settle_many(row, confirms, problems, len(targets))

    def _settle_many(
        self, row: Any, confirms: list[Confirm], problems: list[str], wanted: int
    ) -> None:
        accepted = [c for c in confirms if c.accepted]
        ids = [c.deal_id for c in accepted if c.deal_id]
        values = {
            "confirm": {
                "confirms": [
                    c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in confirms
                ]
            },
            "confirmed_at": self.clock(),
            "deal_ids": ids,
            "deal_reference": confirms[0].deal_reference if confirms else None,
        }
        if len(accepted) == wanted:
            self._move(row, "SUBMITTED", "ACCEPTED", **values)
        elif accepted:
            self._move(
                row, "SUBMITTED", "ACCEPTED", reason="partly done: " + "; ".join(problems), **values
            )
        else:
            self._move(row, "SUBMITTED", "UNKNOWN", reason="; ".join(problems) or "no confirm")

    def _move(self, row: Any, before: str, after: str, **values: Any) -> Any:
        return store.move(self.engine, row.id, before, after, self.clock(), **values)


class _AccountScopes(ExitStack):
    """Holds the broker's account scope while consecutive intents are for the same account."""

    def __init__(self, broker: Broker) -> None:
        super().__init__()
        self.broker = broker
        self.current: str | None = None
        self.inner: ExitStack | None = None

    def enter(self, account_id: str) -> None:
        if account_id == self.current:
            return
        if self.inner is not None:
            self.inner.close()
        self.inner = self.enter_context(ExitStack())
        self.inner.enter_context(self.broker.account(account_id))
        self.current = account_id


def _lifecycle(fn: Callable[..., Any], *args: Any) -> None:
    """The trading lifecycle is lineage, not the intent's truth: a failure there is logged and
    never undoes or repeats the order."""
    try:
        with store.writing():
            fn(*args)
    except Exception:
        log.exception("could not record the lifecycle step %s", fn.__name__)


def today_from_intents(engine: Engine, account_id: str, now: datetime) -> tuple[Decimal, set[str]]:
    """Realized P&L of today's (UTC) confirmed intents, from their confirms' `profit`, and the
    deal ids those intents opened (their open upl counts toward today's loss)."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    c = trade_intents.c
    with store.connect(engine) as conn:
        rows = conn.execute(
            select(c.confirm, c.deal_ids).where(
                c.account_id == account_id, c.confirmed_at >= midnight
            )
        ).all()
    total, deal_ids = Decimal(0), set()
    for r in rows:
        deal_ids.update(r.deal_ids or [])
        confirm = r.confirm or {}
        for one in confirm.get("confirms", [confirm]):
            if one.get("profit") is not None:
                total += Decimal(str(one["profit"]))
    return total, deal_ids
