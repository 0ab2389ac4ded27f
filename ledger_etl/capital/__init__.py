"""Capital.com REST client: session, pacing, retries, windowed history fetching.

Nothing here knows about Dagster; `ledger_etl.defs` wires these functions into assets.
"""

from .auth import encrypt_password
from .client import ApiResponse, CapitalClient, ClientStats
from .errors import (
    ApiError,
    AuthenticationError,
    CapitalError,
    MalformedResponseError,
    RateLimitedError,
    TransientError,
    WindowSplitError,
)
from .history import (
    ACTIVITY,
    HISTORY_ENDPOINTS,
    TRANSACTIONS,
    EndpointSpec,
    FetchRecord,
    HistoryResult,
    fetch_history,
    fetch_window,
)
from .models import (
    Account,
    AccountBalance,
    Activity,
    ActivityAction,
    ActivityDetails,
    LoginSession,
    RowProblem,
    Transaction,
    parse_account,
    parse_activity,
    parse_transaction,
)
from .ratelimit import RateLimiter, limiters_for_key
from .windows import Window, bisect, can_split, coverage_gaps, format_request_datetime, plan_windows

__all__ = [
    "ACTIVITY",
    "HISTORY_ENDPOINTS",
    "TRANSACTIONS",
    "Account",
    "AccountBalance",
    "Activity",
    "ActivityAction",
    "ActivityDetails",
    "ApiError",
    "ApiResponse",
    "AuthenticationError",
    "CapitalClient",
    "CapitalError",
    "ClientStats",
    "EndpointSpec",
    "FetchRecord",
    "HistoryResult",
    "LoginSession",
    "MalformedResponseError",
    "RateLimitedError",
    "RateLimiter",
    "RowProblem",
    "Transaction",
    "TransientError",
    "Window",
    "WindowSplitError",
    "bisect",
    "can_split",
    "coverage_gaps",
    "encrypt_password",
    "fetch_history",
    "fetch_window",
    "format_request_datetime",
    "limiters_for_key",
    "parse_account",
    "parse_activity",
    "parse_transaction",
    "plan_windows",
]
