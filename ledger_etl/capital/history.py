"""One windowed fetcher for both history endpoints; the endpoints differ only as data.

Boundaries. The API does not document whether `from`/`to` are inclusive. We request
`from=window.start, to=window.end` and keep rows with `start <= ts <= end`, closed on the right:
if the API treated `from` as exclusive, a row exactly on a boundary would be missed by the later
window, so the earlier one must keep it. A row on a boundary may therefore arrive twice, once
per adjacent window, and is deduplicated by its natural key:
- transactions: `reference` (unique per row);
- activity: there is no id, and identical rows are legitimate (several fills at one instant),
  so the key is the row's content plus its occurrence number among identical rows of the same
  window response. Every window that reaches a timestamp returns all rows at that timestamp,
  so both windows number identical rows alike: a boundary row is kept once, genuinely repeated
  rows are all kept.
Rows outside `[start, end]` of their window are reported as problems, never silently dropped.

Broken text costs its row, never its window. A history body is decoded leniently: a row whose
text holds bytes that are not UTF-8 is a problem (`text_invalid_utf8`, quarantined with the
bytes as `\\udcXX` escapes). A raw control character inside a string (JSON wants it escaped)
is read as that character, and the row is judged like any other (a NUL in an id is `text_nul`,
a note is cleaned and flagged); its stored text is then its compact JSON re-encoding (numbers as
exact strings): the same value, and JSON that every reader and both backends accept.

Truncation. No paging exists and no row cap is documented; a window with at least
`split_threshold` rows (the client's, `CAPITAL_SPLIT_THRESHOLD`, unless the caller passes one)
is treated as possibly cut short, bisected and both halves re-fetched until every piece is below
the threshold. A server cap below the threshold cannot be seen from one answer; the statement's
reconciliation against the broker balance is what catches it.
"""

from __future__ import annotations

import json
import math
import queue
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .errors import (
    AuthenticationError,
    CapitalError,
    MalformedResponseError,
    RateLimitedError,
    TransientError,
    WindowSplitError,
)
from .models import (
    Activity,
    RowProblem,
    Transaction,
    array_item_texts,
    dump_row,
    parse_activity,
    parse_transaction,
)
from .windows import ONE_DAY, Window, bisect, can_split, coverage_gaps, plan_windows

if TYPE_CHECKING:
    from .client import CapitalClient

COMPLETE, SPLIT, FAILED = "complete", "split", "failed"
# A window that failed transiently and was fetched once more after all the others: the record of
# its first try keeps its error and attempts, and the second try has a record of its own.
RETRIED = "retried"
PROBE = timedelta(seconds=1)
Row = Transaction | Activity


@dataclass(frozen=True, eq=False)
class EndpointSpec:
    """Everything that differs between the history endpoints."""

    name: str
    path: str
    key: str  # top-level key of the response holding the rows
    time_field: str  # the row's UTC timestamp field, as spelled on the wire
    extra_params: Mapping[str, str]
    max_span: timedelta
    parse: Callable[[Any], Row | RowProblem]
    content_key: Callable[[Any], tuple[Any, ...]]
    row_id: Callable[[Any], str | None]  # what FetchRecord.ids lists
    number_duplicates: bool  # keep identical rows of one response apart (no natural id)


TRANSACTIONS = EndpointSpec(
    name="transactions",
    path="/history/transactions",
    key="transactions",
    time_field="dateUtc",
    extra_params=MappingProxyType({}),
    max_span=ONE_DAY,
    parse=parse_transaction,
    content_key=lambda row: (row.reference,),
    row_id=lambda row: row.reference,
    number_duplicates=False,
)
ACTIVITY = EndpointSpec(
    name="activity",
    path="/history/activity",
    key="activities",
    time_field="dateUTC",
    extra_params=MappingProxyType({"detailed": "true"}),
    max_span=ONE_DAY,
    parse=parse_activity,
    content_key=lambda row: row.content_key(),
    row_id=lambda row: row.deal_id,
    number_duplicates=True,
)

# Every history endpoint the ledger keeps, in fetch order: the one registry that syncs,
# coverage checks and statements iterate. A new history endpoint is a spec added here.
HISTORY_ENDPOINTS: tuple[EndpointSpec, ...] = (TRANSACTIONS, ACTIVITY)
HISTORY_ENDPOINT_NAMES: tuple[str, ...] = tuple(spec.name for spec in HISTORY_ENDPOINTS)


@dataclass(frozen=True)
class FetchRecord:
    """What one window request returned; enough to audit coverage and to replay the window."""

    endpoint: str
    account_id: str
    window_start: datetime
    window_end: datetime
    params: dict[str, str]
    http_status: int | None
    attempts: int
    relogins: int
    row_count: int  # rows in the response body, before any filtering
    body_sha256: str | None
    min_ts: datetime | None  # over the rows kept from this window
    max_ts: datetime | None
    duration_s: float
    ids: tuple[str, ...]  # distinct references (transactions) or dealIds (activity) kept
    outcome: str  # COMPLETE | SPLIT | FAILED | RETRIED
    error: str | None = None
    parent: Window | None = None  # the window this one was split from
    transient: bool = False  # failed on errors a later try may not meet (5xx, 429, timeouts)
    rows: tuple[Row, ...] = field(default=(), repr=False)
    keys: tuple[tuple[Any, ...], ...] = field(default=(), repr=False)  # natural key per row
    problems: tuple[RowProblem, ...] = field(default=(), repr=False)
    raws: tuple[str, ...] = field(default=(), repr=False)  # each row's JSON text as received

    @property
    def window(self) -> Window:
        return Window(self.window_start, self.window_end)


@dataclass
class HistoryResult:
    endpoint: str
    account_id: str
    requested: Window
    records: list[FetchRecord]
    rows: list[Row]  # deduplicated, sorted by (timestamp, natural key)
    keys: list[tuple[Any, ...]]  # natural key of each row, same order
    problems: list[RowProblem]
    raws: list[str] = field(default_factory=list)  # each row's JSON text as received, same order
    windows: list[Window] = field(default_factory=list)  # the window each row was kept from

    @property
    def failed(self) -> list[FetchRecord]:
        return [r for r in self.records if r.outcome == FAILED]

    def gaps(self) -> list[Window]:
        """Parts of the requested range no complete window covers."""
        covered = [r.window for r in self.records if r.outcome == COMPLETE]
        return coverage_gaps(self.requested, covered)


def _sortable(key: tuple[Any, ...]) -> tuple[tuple[bool, Any], ...]:
    # None sorts first and is never compared with a value of another type.
    return tuple((value is not None, "" if value is None else value) for value in key)


def _canonical(row: Any) -> str:
    return json.dumps(row, sort_keys=True, default=str)


# What the client gives up on after its attempts but a later request may well get through: an
# overloaded or restarting server (5xx, timeouts, dropped connections), a rate limit, or a body
# cut short or replaced by a proxy's page. A 4xx or a window too dense to split is not retried.
TRANSIENT_ERRORS = (TransientError, RateLimitedError, MalformedResponseError)


def _describe_error(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


_CONTROL = re.compile("[\x00-\x1f]")
INVALID_UTF8 = "text_invalid_utf8: the row holds bytes that are not UTF-8"


def row_text(item: Any, text: str) -> str | RowProblem:
    """The text to store for a row as received (`text`), or why the row cannot be kept: a lone
    surrogate written literally is a byte that was not UTF-8 (an escaped one is ASCII), and a
    raw control character makes the text invalid JSON, so the row is stored re-encoded."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return RowProblem(row=item, reason=INVALID_UTF8)
    if _CONTROL.search(text) is not None:
        try:
            json.loads(text)  # whitespace between tokens may be a raw newline; strings not
        except ValueError:
            return dump_row(item)
    return text


def _keep_rows(
    spec: EndpointSpec, window: Window, items: list[Any], texts: list[str]
) -> tuple[list[tuple[Row, tuple[Any, ...], str]], list[RowProblem]]:
    """Parse, boundary-filter and key the rows of one response (`texts`: each item's JSON)."""
    problems: list[RowProblem] = []
    parsed: list[tuple[Row, Any, str]] = []
    for item, received in zip(items, texts, strict=True):
        item_text = row_text(item, received)
        if isinstance(item_text, RowProblem):
            problems.append(item_text)
            continue
        row = spec.parse(item)
        if isinstance(row, RowProblem):
            problems.append(row)
        elif not window.start <= row.date_utc <= window.end:
            reason = f"{spec.time_field} {row.date_utc.isoformat()} outside window {window}"
            problems.append(RowProblem(row=item, reason=reason))
        else:
            parsed.append((row, item, item_text))
    # Identical content is numbered in the order of the full raw row, not of the response, so
    # two windows returning the same rows in a different order still agree on the numbers. Only
    # rows that share their content need that order (the canonical text is costly to build).
    contents = [spec.content_key(row) for row, _, _ in parsed]
    shared = Counter(contents)
    order = sorted(
        range(len(parsed)),
        key=lambda i: (
            _sortable(contents[i]),
            _canonical(parsed[i][1]) if shared[contents[i]] > 1 else "",
        ),
    )
    seen: Counter[tuple[Any, ...]] = Counter()
    kept = []
    for i in order:
        row, _, item_text = parsed[i]
        content = contents[i]
        key = (*content, seen[content]) if spec.number_duplicates else content
        seen[content] += 1
        kept.append((row, key, item_text))
    return kept, problems


def fetch_window(
    client: CapitalClient,
    account_id: str,
    spec: EndpointSpec,
    window: Window,
    *,
    parent: Window | None = None,
    split_threshold: int | None = None,
    min_split_span: timedelta = timedelta(seconds=2),
) -> FetchRecord:
    """Fetch one window (the caller has made `account_id` active) and describe the outcome."""
    params = {**window.request_params(), **spec.extra_params}
    base = {
        "endpoint": spec.name, "account_id": account_id, "window_start": window.start,
        "window_end": window.end, "params": params, "parent": parent,
    }  # fmt: skip
    started = time.monotonic()
    try:
        response = client.request(
            "GET", spec.path, params=params, expect_key=spec.key, lenient=True
        )
        items = response.body[spec.key]
        if not isinstance(items, list):
            raise MalformedResponseError.for_body(
                "GET", spec.path, response.status, response.raw, f"{spec.key!r} is not a list",
                attempts=response.attempts, params=params,
            )  # fmt: skip
    except AuthenticationError:
        raise  # no window can succeed without a session; stop the whole fetch
    except CapitalError as error:
        return FetchRecord(
            **base, http_status=getattr(error, "status", None),
            attempts=getattr(error, "attempts", 1), relogins=0, row_count=0, body_sha256=None,
            min_ts=None, max_ts=None, duration_s=time.monotonic() - started, ids=(),
            outcome=FAILED, error=_describe_error(error),
            transient=isinstance(error, TRANSIENT_ERRORS),
        )  # fmt: skip
    texts = array_item_texts(response.raw, spec.key)
    if texts is None or len(texts) != len(items):
        texts = [dump_row(item) for item in items]
    kept, problems = _keep_rows(spec, window, items, texts)
    outcome, error_text = COMPLETE, None
    if split_threshold is None:
        split_threshold = client.split_threshold
    if len(items) >= split_threshold:
        if can_split(window, min_split_span):
            outcome = SPLIT
        else:
            outcome = FAILED
            error_text = _describe_error(
                WindowSplitError(
                    f"{len(items)} rows in {window} reach the split threshold "
                    f"{split_threshold} and the window cannot be split further"
                )
            )
    stamps = [row.date_utc for row, _, _ in kept]
    ids = sorted({i for i in (spec.row_id(row) for row, _, _ in kept) if i is not None})
    return FetchRecord(
        **base, http_status=response.status, attempts=response.attempts,
        relogins=response.relogins, row_count=len(items), body_sha256=response.body_sha256,
        min_ts=min(stamps, default=None), max_ts=max(stamps, default=None),
        duration_s=response.duration, ids=tuple(ids), outcome=outcome, error=error_text,
        rows=tuple(row for row, _, _ in kept), keys=tuple(key for _, key, _ in kept),
        problems=tuple(problems), raws=tuple(item for _, _, item in kept),
    )  # fmt: skip


def default_workers(rate_limit: float) -> int:
    """Enough threads to keep the rate limiter busy while responses are in flight."""
    return max(2, min(32, math.ceil(rate_limit)))


def fetch_history(
    client: CapitalClient,
    account_id: str,
    spec: EndpointSpec,
    start: datetime,
    end: datetime,
    *,
    split_threshold: int | None = None,
    max_workers: int | None = None,
    on_window: Callable[[FetchRecord], None] | None = None,
    min_split_span: timedelta = timedelta(seconds=2),
    edge_probe: bool = True,
) -> HistoryResult:
    """Fetch `[start, end)` of one account in windows, concurrently; failures become records.

    `on_window` is called from the calling thread with every record as it is produced.
    Only an `AuthenticationError` aborts the fetch. A window that failed transiently after its
    attempts (a burst of 5xx or 429, a stall) is fetched once more after every other window has
    been tried: its first record becomes RETRIED, and the second try's record counts.
    """
    requested = Window(start, end)
    workers = max_workers or default_workers(client.rate_limit)
    records: list[FetchRecord] = []
    with (
        client.on_account(account_id),
        ThreadPoolExecutor(workers, f"capital-{spec.name}") as pool,
    ):
        # Finished windows arrive on a queue (a done-callback puts them there): waiting on the
        # set of pending futures instead costs a waiter on each of them per completion.
        finished: queue.SimpleQueue[Future[FetchRecord]] = queue.SimpleQueue()
        outstanding = 0

        def submit(window: Window, parent: Window | None) -> None:
            nonlocal outstanding
            future = pool.submit(
                fetch_window, client, account_id, spec, window, parent=parent,
                split_threshold=split_threshold, min_split_span=min_split_span,
            )  # fmt: skip
            outstanding += 1
            future.add_done_callback(finished.put)

        planned = plan_windows(requested.start, requested.end, spec.max_span)
        # Should the API treat `from` as exclusive, the range's first window would miss a row
        # exactly at its start (a monthly rebate at 00:00:00.000, say); a two-second probe
        # straddling the start catches it, whatever the inclusivity. Inside the range, adjacent
        # windows already cover each other's edges (see the module docstring).
        if edge_probe:
            planned.append(Window(requested.start - PROBE, requested.start + PROBE))
        second_pass = True
        try:
            for window in planned:
                submit(window, None)
            while outstanding:
                record = finished.get().result()
                outstanding -= 1
                records.append(record)
                if on_window is not None:
                    on_window(record)
                if record.outcome == SPLIT:
                    for half in bisect(record.window):
                        submit(half, record.window)
                if not outstanding and second_pass:
                    # Every window has been tried: fetch each one that failed transiently once
                    # more, after the burst that made it fail has had time to pass.
                    second_pass = False
                    records, again = _mark_retried(records)
                    for failed in again:
                        submit(failed.window, failed.parent)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return assemble(spec, account_id, requested, records)


def _mark_retried(records: list[FetchRecord]) -> tuple[list[FetchRecord], list[FetchRecord]]:
    """The records with each transient failure marked RETRIED, and those failures."""
    again = [r for r in records if r.outcome == FAILED and r.transient]
    if not again:
        return records, []
    marked = [replace(r, outcome=RETRIED) if r.outcome == FAILED and r.transient else r
              for r in records]  # fmt: skip
    return marked, again


def assemble(
    spec: EndpointSpec, account_id: str, requested: Window, records: list[FetchRecord]
) -> HistoryResult:
    """Merge window records into one deduplicated, ordered result."""
    records = sorted(records, key=lambda r: (r.window_start, r.window_start - r.window_end))
    by_key: dict[tuple[Any, ...], Row] = {}
    origin: dict[tuple[Any, ...], tuple[str, Window]] = {}
    problems: dict[tuple[str, str], RowProblem] = {}
    for record in records:
        if record.outcome == SPLIT:
            continue  # a truncated window's rows and problems are re-read by its halves
        for problem in record.problems:
            problems.setdefault((_canonical(problem.row), problem.reason), problem)
        if record.outcome != COMPLETE:
            continue  # a failed window is a gap; its partial rows stay on its record only
        for row, key, raw in zip(record.rows, record.keys, record.raws, strict=True):
            kept = by_key.setdefault(key, row)
            origin.setdefault(key, (raw, record.window))
            if kept != row:
                reason = f"conflicting rows for key {key!r} in {spec.name}; the first is kept"
                problem = RowProblem(row=row.model_dump(by_alias=True, mode="json"), reason=reason)
                problems.setdefault((_canonical(problem.row), reason), problem)
    ordered = sorted(by_key.items(), key=lambda kv: (kv[1].date_utc, _sortable(kv[0])))
    return HistoryResult(
        endpoint=spec.name,
        account_id=account_id,
        requested=requested,
        records=records,
        rows=[row for _, row in ordered],
        keys=[key for key, _ in ordered],
        problems=list(problems.values()),
        raws=[origin[key][0] for key, _ in ordered],
        windows=[origin[key][1] for key, _ in ordered],
    )
