import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger_etl.capital.windows import (
    Window,
    bisect,
    can_split,
    coverage_gaps,
    format_request_datetime,
    merge_windows,
    plan_windows,
)

T0 = datetime(2026, 7, 1, tzinfo=UTC)


def at(hours: float = 0, seconds: int = 0) -> datetime:
    return T0 + timedelta(hours=hours, seconds=seconds)


def test_window_validation():
    with pytest.raises(ValueError, match="aware"):
        Window(datetime(2026, 7, 1), datetime(2026, 7, 2))
    with pytest.raises(ValueError, match="precede"):
        Window(at(1), at(1))
    with pytest.raises(ValueError, match="whole seconds"):
        Window(at(0), at(1) + timedelta(milliseconds=500))


def test_window_normalises_zone_to_utc():
    plus_two = timezone(timedelta(hours=2))
    window = Window(datetime(2026, 7, 1, 2, tzinfo=plus_two), datetime(2026, 7, 1, 3, tzinfo=UTC))
    assert window.start == T0 and window.start.tzinfo is UTC
    assert window == Window(T0, at(3))
    assert window.contains(T0) and not window.contains(at(3))


def test_request_format_has_no_zone_and_no_fraction():
    assert format_request_datetime(datetime(2026, 7, 1, 23, 46, 31, tzinfo=UTC)) == (
        "2026-07-01T23:46:31"
    )
    assert Window(T0, at(24)).request_params() == {
        "from": "2026-07-01T00:00:00",
        "to": "2026-07-02T00:00:00",
    }
    with pytest.raises(ValueError):
        format_request_datetime(datetime(2026, 7, 1, 0, 0, 0, 1000, tzinfo=UTC))


def test_plan_aligns_to_utc_midnight():
    windows = plan_windows(at(13, 5), at(24 * 2 + 6))
    assert windows == [
        Window(at(13, 5), at(24)),
        Window(at(24), at(48)),
        Window(at(48), at(54)),
    ]


def test_plan_single_short_range_and_exact_days():
    assert plan_windows(at(1), at(2)) == [Window(at(1), at(2))]
    assert plan_windows(T0, at(72)) == [Window(at(h), at(h + 24)) for h in (0, 24, 48)]


def test_plan_with_smaller_span_stays_on_the_grid():
    windows = plan_windows(at(5), at(13), max_span=timedelta(hours=6))
    assert windows == [Window(at(5), at(6)), Window(at(6), at(12)), Window(at(12), at(13))]


def test_plan_rejects_bad_span():
    with pytest.raises(ValueError):
        plan_windows(T0, at(1), max_span=timedelta(0))
    with pytest.raises(ValueError):
        plan_windows(T0, at(1), max_span=timedelta(seconds=1.5))


def test_bisect_and_can_split():
    left, right = bisect(Window(T0, at(0, 5)))
    assert left == Window(T0, at(0, 2)) and right == Window(at(0, 2), at(0, 5))
    assert can_split(Window(T0, at(0, 2)))
    assert not can_split(Window(T0, at(0, 1)))
    assert not can_split(Window(T0, at(0, 30)), min_span=timedelta(minutes=1))
    with pytest.raises(ValueError):
        bisect(Window(T0, at(0, 1)))


def test_coverage_gaps_merges_overlap_and_adjacency():
    requested = Window(T0, at(10))
    covered = [
        Window(at(1), at(3)),
        Window(at(2), at(4)),
        Window(at(4), at(5)),
        Window(at(7), at(12)),
    ]
    assert coverage_gaps(requested, covered) == [Window(T0, at(1)), Window(at(5), at(7))]
    assert coverage_gaps(requested, []) == [requested]
    assert coverage_gaps(requested, [Window(at(-5), at(20))]) == []
    assert merge_windows([Window(at(4), at(5)), Window(at(1), at(4))]) == [Window(at(1), at(5))]


# --- properties ---

instants = st.integers(min_value=0, max_value=40 * 86400).map(lambda s: T0 + timedelta(seconds=s))
spans = st.sampled_from(
    [timedelta(days=1), timedelta(hours=6), timedelta(hours=1), timedelta(days=2)]
)


@given(instants, st.integers(min_value=1, max_value=20 * 86400), spans)
def test_planned_windows_tile_the_range(start, length, max_span):
    end = start + timedelta(seconds=length)
    windows = plan_windows(start, end, max_span)
    assert windows[0].start == start and windows[-1].end == end
    for previous, following in itertools.pairwise(windows):
        assert previous.end == following.start
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for window in windows:
        assert window.span <= max_span
        assert window.span <= timedelta(days=1) or max_span > timedelta(days=1)
    for window in windows[:-1]:
        assert (window.end - epoch) % max_span == timedelta(0)
        if max_span == timedelta(days=1):
            assert window.end.time() == datetime.min.time()
    # Only the first and last windows may be shorter than the span.
    assert all(w.span == max_span for w in windows[1:-1])


@given(instants, st.integers(min_value=2, max_value=5 * 86400))
def test_bisect_halves_tile_the_window(start, length):
    window = Window(start, start + timedelta(seconds=length))
    left, right = bisect(window)
    assert left.start == window.start and left.end == right.start and right.end == window.end
    assert abs(left.span - right.span) <= timedelta(seconds=1)


intervals = st.tuples(st.integers(0, 199), st.integers(1, 60)).map(lambda p: (p[0], p[0] + p[1]))


@given(st.lists(intervals, max_size=8), st.integers(0, 50), st.integers(1, 150))
def test_coverage_gaps_matches_brute_force(covered_pairs, req_start, req_length):
    requested = Window(at(0, req_start), at(0, req_start + req_length))
    covered = [Window(at(0, a), at(0, b)) for a, b in covered_pairs]
    gaps = coverage_gaps(requested, covered)
    covered_seconds = {s for a, b in covered_pairs for s in range(a, b)}
    expected = {s for s in range(req_start, req_start + req_length) if s not in covered_seconds}
    gap_seconds = [
        s
        for gap in gaps
        for s in range(int((gap.start - T0).total_seconds()), int((gap.end - T0).total_seconds()))
    ]
    assert sorted(gap_seconds) == sorted(expected)
    assert len(gap_seconds) == len(set(gap_seconds))
    for previous, following in itertools.pairwise(gaps):
        assert previous.end < following.start  # maximal: never adjacent
