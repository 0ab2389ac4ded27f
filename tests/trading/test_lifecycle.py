"""The lifecycle fold and the change log: table-driven transitions, repeats ignored, invalid
transitions and vanished deals flagged; edited, removed and reordered entries detected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, update

from ledger_etl.ledger.db import upgrade
from ledger_etl.ledger.schema import trading_changelog
from ledger_etl.trading import changelog
from ledger_etl.trading.lifecycle import (
    ORDER,
    POSITION,
    TRANSITIONS,
    Deal,
    Event,
    apply,
    check_vanished,
)
from ledger_etl.trading.tracker import LifecycleTracker

T0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)


def _run(kind, *steps):
    deal = Deal("A", "D", kind)
    log = []
    for i, (name, values) in enumerate(steps):
        t = apply(deal, Event("D", kind, name, T0 + timedelta(minutes=i), "test", values))
        if t is not None:
            log.append((t.from_state, t.to_state, t.flag))
    return deal, log


def test_order_paths_and_races():
    _, filled = _run(ORDER, ("submitted", {"level": "10"}), ("accepted", {}), ("filled", {}))
    assert filled == [
        (None, "PENDING", None),
        ("PENDING", "ACCEPTED", None),
        ("ACCEPTED", "FILLED", None),
    ]
    _, raced = _run(ORDER, ("accepted", {}), ("cancelled", {}), ("filled", {"level": "9"}))
    assert raced[-1] == ("CANCELLED", "FILLED", None)
    deal, rejected = _run(ORDER, ("submitted", {}), ("rejected", {"reason": "MARKET_CLOSED"}))
    assert deal.state == "REJECTED" and rejected[-1] == ("PENDING", "REJECTED", None)


def test_repeats_are_ignored_and_invalid_transitions_flagged():
    deal, log = _run(
        POSITION,
        ("opened", {"size": "5", "level": "1"}),
        ("opened", {"size": "5"}),  # seen again in the snapshot
        ("partially_closed", {"size": "3"}),
        ("partially_closed", {"size": "3"}),
        ("amended", {"stop_level": "0.9"}),
        ("amended", {"stop_level": "0.9"}),
        ("closed", {}),
        ("closed", {}),
        ("partially_closed", {"size": "1"}),
    )
    assert [s[1] for s in log] == ["OPEN", "PARTIALLY_CLOSED", "AMENDED", "CLOSED", "CLOSED"]
    assert log[-1] == ("CLOSED", "CLOSED", "invalid_transition")
    assert deal.state == "CLOSED" and "invalid_transition:CLOSED->partially_closed" in deal.flags
    assert deal.intended["level"] == "1" and len(deal.executed["closes"]) == 2


def test_transition_table_is_data_and_closed_under_states():
    for kind, table in TRANSITIONS.items():
        for (before, _event), after in table.items():
            assert before is None or isinstance(before, str)
            assert after.isupper(), (kind, after)


def test_vanished_after_the_grace_period_only():
    deal = Deal("A", "D", POSITION, state="OPEN", gone_since=T0)
    assert check_vanished(deal, T0 + timedelta(minutes=4)) is None
    event = check_vanished(deal, T0 + timedelta(minutes=5))
    assert event is not None and apply(deal, event).flag == "vanished"
    late = apply(deal, Event("D", POSITION, "closed", T0 + timedelta(minutes=9), "activity", {}))
    assert (late.from_state, late.to_state) == ("VANISHED", "CLOSED")


@pytest.fixture
def logged(ledger_engine):
    upgrade(ledger_engine)
    with ledger_engine.begin() as conn:
        tracker = LifecycleTracker(conn, "A")
        tracker.apply(
            [
                Event("D1", ORDER, "submitted", T0, "submission", {"level": "1.5"}),
                Event("D1", ORDER, "accepted", T0 + timedelta(seconds=1), "confirm", {}),
                Event(
                    "D1", ORDER, "amended", T0 + timedelta(minutes=1), "snapshot", {"level": "1.6"}
                ),
                Event(
                    "D1",
                    ORDER,
                    "filled",
                    T0 + timedelta(minutes=2),
                    "activity",
                    {"level": "1.6", "size": "2"},
                ),
            ]
        )
        assert tracker.flush(T0 + timedelta(minutes=3)) == 4
    return ledger_engine


def _problems(engine):
    with engine.connect() as conn:
        return changelog.verify(conn)[1]


def test_change_log_verifies_and_detects_each_kind_of_tampering(logged):
    assert _problems(logged) == []
    c = trading_changelog.c
    for seq in (1, 2, 3, 4):
        with logged.begin() as conn:
            row = conn.execute(select(trading_changelog).where(c.seq == seq)).one()
            conn.execute(
                update(trading_changelog)
                .where(c.seq == seq)
                .values(to_state="CANCELLED" if seq != 2 else "FILLED")
            )
        found = _problems(logged)
        assert [p.seq for p in found] == [seq] and "edited" in found[0].reason
        with logged.begin() as conn:
            conn.execute(
                update(trading_changelog).where(c.seq == seq).values(to_state=row.to_state)
            )
    assert _problems(logged) == []
    with logged.begin() as conn:
        conn.execute(update(trading_changelog).where(c.seq == 2).values(seq=99))
        conn.execute(update(trading_changelog).where(c.seq == 3).values(seq=2))
        conn.execute(update(trading_changelog).where(c.seq == 99).values(seq=3))
    assert _problems(logged)  # reordered
    with logged.begin() as conn:
        conn.execute(delete(trading_changelog).where(c.seq == 3))
    assert any("missing" in p.reason for p in _problems(logged))
