"""The pure statement builder, with hand-made inputs (no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ledger_etl.statements.build import build_statement
from ledger_etl.statements.document import statement_content_hash
from ledger_etl.statements.model import (
    BalanceObservation,
    Gap,
    LedgerEntry,
    ObservationWindow,
    StatementInputs,
)
from ledger_etl.statements.paths import UnsafeNameError, parse_month, validate_account_id

JUNE = parse_month("2025-06")
D = Decimal


def entry(ref: str, day: int, amount: str, kind: str = "TRADE", code: str = "4000") -> LedgerEntry:
    return LedgerEntry(
        reference=ref,
        posted_at=datetime(2025, 6, day, 12, tzinfo=UTC),
        transaction_type=kind,
        instrument="EURUSD",
        amount=D(amount),
        currency="USD",
        status="PROCESSED",
        deal_id=None,
        note=None,
        ledger_account=code,
        flags="",
        row_sha256="0" * 64,
        last_run_id=f"run-{day:02d}",
    )


def inputs(**overrides: object) -> StatementInputs:
    entries = (
        entry("a1", 2, "-10.50"),
        entry("a2", 2, "200", "DEPOSIT", "1100"),
        entry("a0", 2, "5.25", "SWAP", "6000"),  # same instant as a1/a2: ordered by reference
        entry("b1", 20, "-0.75", "SWAP", "6000"),
    )
    entries = tuple(sorted(entries, key=lambda e: (e.posted_at, e.reference)))
    base = {
        "account_id": "ACC-1",
        "account_name": "USD account",
        "currency": "USD",
        "period": JUNE,
        "balance_before": D("1000"),
        "balance_before_previous": D("900"),
        "previous_movement": D("100"),
        "balance_at_end": D("1194.00"),
        "entries": entries,
        "activities": (),
        "fetches": (),
        "gaps": (),
        "observation": BalanceObservation(datetime(2025, 7, 3, tzinfo=UTC), D("1250"), "USD", "r"),
        "observation_window": ObservationWindow(D("56.00")),
        "ledger_account_names": {"4000": "Realised trading P&L", "1100": "Deposits"},
    }
    base.update(overrides)
    return StatementInputs(**base)  # type: ignore[arg-type]


def test_running_balance_totals_and_closing() -> None:
    s = build_statement(inputs())
    assert [ln.entry.reference for ln in s.lines] == ["a0", "a1", "a2", "b1"]
    assert [ln.running_balance for ln in s.lines] == [D("1005.25"), D("994.75"), D("1194.75"),
                                                      D("1194.00")]  # fmt: skip
    assert s.opening_balance == D("1000")
    assert s.closing_balance == D("1194.00")
    assert s.movement == D("194.00")
    by_type = {t.key: (t.count, t.amount) for t in s.totals_by_type}
    assert by_type == {"DEPOSIT": (1, D("200")), "SWAP": (2, D("4.50")), "TRADE": (1, D("-10.50"))}
    by_account = {t.key: (t.name, t.amount) for t in s.totals_by_ledger_account}
    assert by_account["4000"] == ("Realised trading P&L", D("-10.50"))
    assert by_account["6000"] == ("6000", D("4.50"))  # unnamed code falls back to the code
    assert sum(t.amount for t in s.totals_by_type) == s.movement
    assert all(c.ok for c in s.checks), s.checks
    assert s.status == "FINAL"
    assert s.ledger_state.entry_count == 4
    assert s.ledger_state.max_last_run_id == "run-20"


def test_reconciled_when_observation_rolls_back_to_closing() -> None:
    r = build_statement(inputs()).reconciliation
    assert r.status == "RECONCILED"
    assert r.implied_closing == D("1194.00") and r.difference == 0


def test_difference_reports_the_amount() -> None:
    obs = BalanceObservation(datetime(2025, 7, 3, tzinfo=UTC), D("1251.30"), "USD", None)
    r = build_statement(inputs(observation=obs)).reconciliation
    assert r.status == "DIFFERENCE"
    assert r.difference == D("-1.30")  # ledger closing - broker-implied closing


def test_observation_before_period_end_rolls_forward() -> None:
    obs = BalanceObservation(datetime(2025, 6, 10, tzinfo=UTC), D("1194.75"), "USD", None)
    window = ObservationWindow(D("-0.75"))  # b1, between the observation and the month's end
    r = build_statement(inputs(observation=obs, observation_window=window)).reconciliation
    assert r.status == "RECONCILED" and r.implied_closing == D("1194.00")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"observation": None, "observation_window": None}, "no broker balance observation"),
        (
            {
                "observation_window": ObservationWindow(
                    D("56.00"),
                    (
                        Gap(
                            "transactions",
                            datetime(2025, 7, 1, tzinfo=UTC),
                            datetime(2025, 7, 2, tzinfo=UTC),
                        ),
                    ),
                )
            },
            "transactions gap",
        ),
        (
            {
                "observation": BalanceObservation(
                    datetime(2025, 7, 3, tzinfo=UTC), D(1250), "EUR", None
                )
            },
            "currency",
        ),
    ],
)
def test_unverified_with_reason(overrides: dict, reason: str) -> None:
    r = build_statement(inputs(**overrides)).reconciliation
    assert r.status == "UNVERIFIED"
    assert r.reason and reason in r.reason
    assert r.difference is None


def test_gaps_make_the_statement_provisional() -> None:
    gap = Gap("activity", datetime(2025, 6, 5, tzinfo=UTC), datetime(2025, 6, 6, tzinfo=UTC))
    s = build_statement(inputs(gaps=(gap,)))
    assert s.status == "PROVISIONAL"
    assert s.coverage.gaps == (gap,)
    assert statement_content_hash(s) != statement_content_hash(build_statement(inputs()))


def test_checks_catch_an_inconsistent_ledger() -> None:
    s = build_statement(inputs(previous_movement=D("99.99"), balance_at_end=D("1")))
    failed = {c.name for c in s.checks if not c.ok}
    assert failed == {"opening_equals_previous_closing", "closing_equals_ledger_balance"}


def test_empty_month() -> None:
    s = build_statement(
        inputs(entries=(), balance_at_end=D("1000"), observation_window=ObservationWindow(D("250")))
    )
    assert s.closing_balance == s.opening_balance == D("1000")
    assert s.totals_by_type == () and all(c.ok for c in s.checks)
    assert s.reconciliation.status == "RECONCILED"


def test_precision_beyond_the_default_decimal_context() -> None:
    big = D("1234567890123456789012345.12345678")  # 33 significant digits
    e = replace(entry("x", 3, "0"), amount=big)
    s = build_statement(
        inputs(
            entries=(e,),
            balance_before=D("0.00000001"),
            balance_before_previous=D("0.00000001"),
            previous_movement=D(0),
            balance_at_end=big + D("0.00000001"),
            observation=None,
            observation_window=None,
        )
    )
    assert s.closing_balance == D("1234567890123456789012345.12345679")


def test_content_hash_ignores_evidence_but_not_content() -> None:
    base = build_statement(inputs())
    later_obs = BalanceObservation(datetime(2025, 7, 9, tzinfo=UTC), D("1300"), "USD", "r2")
    again = build_statement(
        inputs(observation=later_obs, observation_window=ObservationWindow(D("106.00")))
    )
    assert again.reconciliation.status == "RECONCILED"
    assert statement_content_hash(again) == statement_content_hash(base)
    changed = build_statement(
        inputs(
            entries=(*inputs().entries[:3], entry("b1", 20, "-0.76", "SWAP", "6000")),
            balance_at_end=D("1193.99"),
        )
    )
    assert statement_content_hash(changed) != statement_content_hash(base)


@pytest.mark.parametrize(
    "bad", ["..", "../x", "a/b", "/etc", "a\x00b", "", "x" * 65, "a b", "a.b", "\\x", "C:\\x"]
)
def test_unsafe_account_ids_are_refused(bad: str) -> None:
    with pytest.raises(UnsafeNameError):
        validate_account_id(bad)


@pytest.mark.parametrize("bad", ["2025-13", "2025-6", "../2025-06", "2025-06/..", "2025-00", "x"])
def test_bad_months_are_refused(bad: str) -> None:
    with pytest.raises(UnsafeNameError):
        parse_month(bad)


def test_month_bounds() -> None:
    dec = parse_month("2025-12")
    assert (dec.start, dec.end, dec.previous_start) == (
        datetime(2025, 12, 1, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2025, 11, 1, tzinfo=UTC),
    )
    jan = parse_month("2025-01")
    assert jan.previous_start == datetime(2024, 12, 1, tzinfo=UTC)
    assert jan.end - jan.start == timedelta(days=31)


LATE_OBSERVATION = BalanceObservation(datetime(2025, 7, 3, tzinfo=UTC), D("1251.30"), "USD", None)
A_GAP = (Gap("transactions", datetime(2025, 6, 5, tzinfo=UTC), datetime(2025, 6, 6, tzinfo=UTC)),)

# (id, input overrides, the beginnings of the reasons; none means FINAL)
STATUS_CASES = [
    ("covered_reconciled", {}, []),
    ("difference", {"observation": LATE_OBSERVATION},
     ["reconciliation DIFFERENCE of -1.30 USD", "opening balance 1000.00 not proven"]),
    ("difference_opening_from_previous_final",
     {"observation": LATE_OBSERVATION, "previous_final_closing": D("1000")},
     ["reconciliation DIFFERENCE of -1.30 USD"]),
    ("previous_final_closes_elsewhere",
     {"observation": LATE_OBSERVATION, "previous_final_closing": D("999.99")},
     ["reconciliation DIFFERENCE", "opening balance 1000.00 not proven: the previous month's "
      "FINAL statement closes at 999.99"]),
    ("no_observation", {"observation": None},
     ["reconciliation UNVERIFIED: no broker balance observation",
      "opening balance 1000.00 not proven"]),
    ("gaps_even_if_reconciled", {"gaps": A_GAP},
     ["coverage gaps (2025-06): [2025-06-05T00:00:00Z, 2025-06-06T00:00:00Z)",
      "opening balance 1000.00 not proven"]),
    ("gaps_opening_from_previous_final", {"gaps": A_GAP, "previous_final_closing": D("1000")},
     ["coverage gaps"]),
    ("month_not_closed", {"month_closed": False}, ["month not closed"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "expected"), [c[1:] for c in STATUS_CASES], ids=[c[0] for c in STATUS_CASES]
)
def test_final_only_when_covered_opening_proven_and_reconciled(
    overrides: dict[str, object], expected: list[str]
) -> None:
    statement = build_statement(inputs(**overrides))
    assert statement.status == ("PROVISIONAL" if expected else "FINAL")
    assert len(statement.status_reasons) == len(expected), statement.status_reasons
    for reason, start in zip(statement.status_reasons, expected, strict=True):
        assert reason.startswith(start), (reason, start)


def test_a_final_statement_hashes_as_before_reasons_enter_only_when_provisional() -> None:
    """Statements published FINAL before reasons existed keep their content hash."""
    from ledger_etl.statements.document import content_hash, entry_doc, header

    final = build_statement(inputs())
    head = header(final)
    assert head["status_reasons"] == []
    entries = [entry_doc(line) for line in final.lines]
    without = {key: value for key, value in head.items() if key != "status_reasons"}
    assert content_hash(head, entries) == content_hash(without, entries)
    provisional = build_statement(inputs(month_closed=False))
    assert statement_content_hash(provisional) != statement_content_hash(final)
