"""Client sentiment: GET /clientsentiment?marketIds=A,B (reference §7).

The answer carries no timestamp, so an observation is stamped with the server's own clock
(`GET /time`), read just before the batch calls: the instant belongs to the broker, not to the
machine that happened to poll, and a simulated world keeps its simulated time.

Batching: the reference documents no cap for `marketIds`; the only documented cap on a list of
markets is the 50 epics of `GET /markets?epics=`, so requests carry at most 50 (an inference).
One unknown market fails a whole batch with 404 `error.not-found.epic`; the batch is then halved
until the unknown markets stand alone, so they are reported by name and the rest are still
observed (log2 extra calls per unknown market, not one call per market).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from ledger_etl.errors import InputError

from .errors import ApiError, MalformedResponseError
from .models import Amount, RowProblem, _parse_row, _Payload

if TYPE_CHECKING:
    from .client import CapitalClient

SENTIMENT_BATCH = 50
NOT_FOUND = "error.not-found.epic"
_HUNDRED = 100
log = logging.getLogger("ledger_etl.capital.sentiment")


class ClientSentiment(_Payload):
    """One market's sentiment: the percentages of clients long and short, exact decimals."""

    market_id: str = Field(alias="marketId", min_length=1)
    long_position_percentage: Amount = Field(alias="longPositionPercentage")
    short_position_percentage: Amount = Field(alias="shortPositionPercentage")

    @model_validator(mode="after")
    def _percentages(self) -> ClientSentiment:
        for name in ("long_position_percentage", "short_position_percentage"):
            value = getattr(self, name)
            if not 0 <= value <= _HUNDRED:
                raise ValueError(f"{name} {value} is outside 0..100")
        return self

    @property
    def sums_to_hundred(self) -> bool:
        """The API's shares add up to 100; a row that does not is kept but flagged."""
        return self.long_position_percentage + self.short_position_percentage == _HUNDRED


@dataclass(frozen=True)
class SentimentPoll:
    """What one poll saw: the server's instant, the markets it answered for, and what it did
    not (unknown markets by name, unusable rows with their reason)."""

    observed_at: datetime
    sentiments: list[ClientSentiment]
    unknown: list[str] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    requests: int = 0


def validate_epics(epics: Iterable[str]) -> list[str]:
    """Distinct epics in the order given; InputError for an empty list or an unusable name."""
    chosen: list[str] = []
    for raw in epics:
        epic = raw.strip() if isinstance(raw, str) else ""
        if not epic or "," in epic or len(epic) > 64 or not epic.isprintable():
            raise InputError(f"{str(raw)[:80]!r} is not an epic (1..64 printable characters)")
        if epic not in chosen:
            chosen.append(epic)
    if not chosen:
        raise InputError("no epics given")
    return chosen


def observed_now(client: CapitalClient) -> datetime:
    """The server's clock to the whole second, UTC: the instant an observation is stamped with."""
    return client.server_time().replace(microsecond=0)


def fetch_client_sentiment(
    client: CapitalClient,
    epics: Sequence[str],
    *,
    batch_size: int = SENTIMENT_BATCH,
    observed_at: datetime | None = None,
) -> SentimentPoll:
    """Sentiment of every epic (in batches of `batch_size`), stamped with the server's time."""
    if not 1 <= batch_size <= SENTIMENT_BATCH:
        raise ValueError(f"batch_size must be 1..{SENTIMENT_BATCH}, got {batch_size}")
    chosen = validate_epics(epics)
    stamp = observed_at or observed_now(client)
    poll = _Collector()
    for start in range(0, len(chosen), batch_size):
        poll.fetch(client, chosen[start : start + batch_size])
    return SentimentPoll(stamp, poll.found, poll.unknown, poll.problems, poll.requests)


class _Collector:
    def __init__(self) -> None:
        self.found: list[ClientSentiment] = []
        self.unknown: list[str] = []
        self.problems: list[RowProblem] = []
        self.requests = 0

    def fetch(self, client: CapitalClient, batch: list[str]) -> None:
        self.requests += 1
        try:
            response = client.request(
                "GET",
                "/clientsentiment",
                params={"marketIds": ",".join(batch)},
                expect_key="clientSentiments",
            )
        except ApiError as error:
            if error.status != 404 or error.error_code != NOT_FOUND:
                raise
            if len(batch) == 1:
                log.warning("client sentiment: the API does not know %s", batch[0])
                self.unknown.append(batch[0])
                return
            half = len(batch) // 2
            self.fetch(client, batch[:half])
            self.fetch(client, batch[half:])
            return
        rows = response.body["clientSentiments"]
        if not isinstance(rows, list):
            raise MalformedResponseError.for_body(
                "GET", "/clientsentiment", response.status, response.raw,
                "clientSentiments is not a list",
            )  # fmt: skip
        self._take(rows, batch)

    def _take(self, rows: list[Any], batch: list[str]) -> None:
        asked, seen = set(batch), set()
        for row in rows:
            parsed = _parse_row(ClientSentiment, row)
            if isinstance(parsed, RowProblem):
                self.problems.append(parsed)
            elif parsed.market_id not in asked:
                self.problems.append(RowProblem(row, f"market {parsed.market_id} not asked for"))
            elif parsed.market_id in seen:
                self.problems.append(RowProblem(row, f"market {parsed.market_id} answered twice"))
            else:
                seen.add(parsed.market_id)
                self.found.append(parsed)
        for epic in batch:
            if epic not in seen and not any(p.row.get("marketId") == epic for p in self.problems):
                self.problems.append(RowProblem({"marketId": epic}, "asked for, not answered"))
