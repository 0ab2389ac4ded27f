"""Pure: statement inputs -> `Statement`. No database, no files, no clock.

Opening balance, running balance per entry, closing balance, totals by transaction type and by
chart-of-accounts code, the reconciliation against the broker's reported balance, the coverage
certificate and the internal checks every published statement must pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal, localcontext

from ledger_etl.statements.document import money
from ledger_etl.statements.model import (
    Check,
    Coverage,
    LedgerEntry,
    LedgerState,
    Reconciliation,
    Statement,
    StatementInputs,
    StatementLine,
    Total,
)

ZERO = Decimal(0)
# NUMERIC(38, 8) amounts need 38 significant digits; the default context keeps only 28.
MONEY_PRECISION = 60


def build_statement(inputs: StatementInputs) -> Statement:
    """The month's statement for one account from plain ledger data."""
    with localcontext() as ctx:
        ctx.prec = MONEY_PRECISION
        opening = inputs.balance_before
        lines, closing = _running_lines(inputs.entries, opening)
        movement = closing - opening
        type_names = inputs.transaction_type_names
        by_type = _totals(
            inputs.entries, lambda e: e.transaction_type, lambda k: type_names.get(k, k)
        )
        names = inputs.ledger_account_names
        by_account = _totals(inputs.entries, lambda e: e.ledger_account, lambda k: names.get(k, k))
        reconciliation = reconcile(inputs, closing)
        checks = _checks(inputs, opening, closing, movement, lines, by_type, by_account)
    coverage = Coverage(inputs.fetches, inputs.gaps)
    reasons = status_reasons(inputs, coverage, reconciliation, opening)
    return Statement(
        account_id=inputs.account_id,
        account_name=inputs.account_name,
        currency=inputs.currency,
        period=inputs.period,
        status="PROVISIONAL" if reasons else "FINAL",
        status_reasons=reasons,
        opening_balance=opening,
        closing_balance=closing,
        movement=movement,
        lines=lines,
        totals_by_type=by_type,
        totals_by_ledger_account=by_account,
        activity=inputs.activities,
        reconciliation=reconciliation,
        coverage=coverage,
        ledger_state=ledger_state(inputs.entries),
        checks=checks,
        foreign_currency_entries=inputs.foreign_currency,
    )


def status_reasons(
    inputs: StatementInputs, coverage: Coverage, reconciliation: Reconciliation, opening: Decimal
) -> tuple[str, ...]:
    """Why the statement cannot be FINAL; none when it is proven.

    FINAL needs all three: the month is covered (no gaps); the opening balance is proven; the
    closing reconciles with the broker's balance. The opening is proven by the previous month's
    FINAL closing, or by the reconciliation itself: a closing that equals the broker's balance,
    less a completely covered month of movements, leaves only one possible opening.
    """
    reasons = []
    if not inputs.month_closed:
        reasons.append("month not closed")
    if not coverage.complete:
        spans = ", ".join(f"[{iso_z(g.start)}, {iso_z(g.end)})" for g in coverage.gaps[:3])
        more = f" and {len(coverage.gaps) - 3} more" if len(coverage.gaps) > 3 else ""
        reasons.append(f"coverage gaps ({inputs.period.label}): {spans}{more}")
    if reconciliation.status == "DIFFERENCE":
        reasons.append(
            f"reconciliation DIFFERENCE of {money(reconciliation.difference)} {inputs.currency} "
            "against the broker's balance"
        )
    elif reconciliation.status == "UNVERIFIED":
        reasons.append(f"reconciliation UNVERIFIED: {reconciliation.reason}")
    proven_by_previous = inputs.previous_final_closing == opening
    proven_by_broker = coverage.complete and reconciliation.status == "RECONCILED"
    if not (proven_by_previous or proven_by_broker):
        previous = (
            f"the previous month's FINAL statement closes at {money(inputs.previous_final_closing)}"
            if inputs.previous_final_closing is not None
            else "no FINAL statement of the previous month is published"
        )
        reasons.append(
            f"opening balance {money(opening)} not proven: {previous}, and the reconciliation does "
            "not prove it"
        )
    return tuple(reasons)


def iso_z(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _running_lines(
    entries: Iterable[LedgerEntry], opening: Decimal
) -> tuple[tuple[StatementLine, ...], Decimal]:
    balance = opening
    lines = []
    append = lines.append
    for entry in entries:
        balance += entry.amount
        append(StatementLine(entry, balance))
    return tuple(lines), balance


def _totals(entries, key_of, name_of) -> tuple[Total, ...]:  # type: ignore[no-untyped-def]
    counts: dict[str, int] = {}
    sums: dict[str, Decimal] = {}
    for entry in entries:
        key = key_of(entry)
        counts[key] = counts.get(key, 0) + 1
        sums[key] = sums.get(key, ZERO) + entry.amount
    return tuple(Total(key, name_of(key), counts[key], sums[key]) for key in sorted(counts))


def reconcile(inputs: StatementInputs, closing: Decimal) -> Reconciliation:
    """Roll the broker's latest reported balance back (or forward) to the period's end.

    The broker's balance at an instant is the sum of every transaction before it, so the balance
    implied at the period's end is `observed - entries in [end, observed_at)`, or
    `observed + entries in [observed_at, end)` for an observation taken before the end.
    """
    observation = inputs.observation
    window = inputs.observation_window
    if observation is None or window is None:
        reason = "no broker balance observation for this account"
        if inputs.skipped_balance:
            reason += f"; the broker's balance was not usable ({inputs.skipped_balance})"
        return Reconciliation("UNVERIFIED", closing, reason=reason)
    after_end = observation.observed_at >= inputs.period.end
    implied = (
        observation.balance - window.movement
        if after_end
        else observation.balance + window.movement
    )
    base = {
        "closing_balance": closing,
        "observed_at": observation.observed_at,
        "observed_balance": observation.balance,
        "movement_between": window.movement,
        "implied_closing": implied,
        "unproven_from": window.unchecked_from,
    }
    if window.gaps:
        spans = ", ".join(f"[{g.start.isoformat()}, {g.end.isoformat()})" for g in window.gaps)
        return Reconciliation(
            "UNVERIFIED",
            **base,
            reason=f"transactions gap between the period end and the observation: {spans}",
        )
    if (
        observation.currency
        and inputs.currency
        and observation.currency.upper() != inputs.currency.upper()
    ):
        return Reconciliation(
            "UNVERIFIED",
            **base,
            reason=f"observation currency {observation.currency} is not {inputs.currency}",
        )
    if implied == closing:
        return Reconciliation("RECONCILED", **base, difference=ZERO)
    return Reconciliation("DIFFERENCE", **base, difference=closing - implied)


def _checks(
    inputs: StatementInputs,
    opening: Decimal,
    closing: Decimal,
    movement: Decimal,
    lines: tuple[StatementLine, ...],
    by_type: tuple[Total, ...],
    by_account: tuple[Total, ...],
) -> tuple[Check, ...]:
    previous_closing = inputs.balance_before_previous + inputs.previous_movement
    entry_sum = sum((e.amount for e in inputs.entries), ZERO)
    type_sum = sum((t.amount for t in by_type), ZERO)
    account_sum = sum((t.amount for t in by_account), ZERO)
    last_running = lines[-1].running_balance if lines else opening
    ordered = all(
        (a.posted_at, a.reference) < (b.posted_at, b.reference)
        for a, b in zip(inputs.entries, inputs.entries[1:], strict=False)
    )
    return (
        Check(
            "opening_equals_previous_closing",
            opening == previous_closing,
            f"opening {opening} == previous month closing {previous_closing}",
        ),
        Check(
            "entries_sum_equals_movement",
            entry_sum == closing - opening,
            f"sum of entries {entry_sum} == closing {closing} - opening {opening}",
        ),
        Check(
            "closing_equals_ledger_balance",
            closing == inputs.balance_at_end,
            f"closing {closing} == ledger balance at period end {inputs.balance_at_end}",
        ),
        Check(
            "totals_agree",
            type_sum == account_sum == movement,
            f"by type {type_sum} == by ledger account {account_sum} == movement {movement}",
        ),
        Check(
            "running_balance_ends_at_closing",
            last_running == closing,
            f"last running balance {last_running} == closing {closing}",
        ),
        Check(
            "entries_ordered_and_unique",
            ordered,
            "entries strictly ordered by (posted_at, reference)",
        ),
    )


def ledger_state(entries: Iterable[LedgerEntry]) -> LedgerState:
    digest = hashlib.sha256()
    count = 0
    last_run: str | None = None
    for entry in entries:
        count += 1
        digest.update(f"{entry.reference}\x1f{entry.row_sha256}\n".encode())
        if last_run is None or entry.last_run_id > last_run:
            last_run = entry.last_run_id
    return LedgerState(count, digest.hexdigest(), last_run)
