"""The chart of accounts: which ledger account each Capital.com transaction type posts to.

The default maps all 26 documented transaction types. A user can override or extend it with a
JSON file (`LEDGER_CHART_OF_ACCOUNTS=/path/chart.json`):

```json
{"accounts": {"4000": "Realised trading P&L", "6100": "Financing"},
 "types": {"TRADE": "4000", "SWAP": "6100"}}
```

An unknown transaction type posts to the suspense account 9999 and the entry is flagged
`unknown_type`; nothing is dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ledger_etl.errors import InputError
from ledger_etl.settings import chart_path

SUSPENSE = "9999"

DEFAULT_ACCOUNTS: dict[str, str] = {
    "1100": "Client funds: deposits",
    "1110": "Client funds: withdrawals",
    "1120": "Client funds: refunds and chargebacks",
    "1130": "Inter-account transfers",
    "1140": "Currency conversion",
    "4000": "Realised trading P&L",
    "4010": "Trade corrections and slippage protection",
    "4020": "Corporate actions",
    "4100": "Bonuses, rebates and credits",
    "5000": "Trading commissions",
    "5010": "Guaranteed stop premiums",
    "5020": "FX conversion commissions",
    "6000": "Overnight financing (swaps)",
    "6100": "Account fees",
    "6200": "Adjustments and write-offs",
    "6300": "Negative balance protection",
    "6400": "Complaint settlements",
    "7000": "Reserved funds",
    "7010": "Credit facility",
    SUSPENSE: "Suspense: unmapped transaction types",
}

DEFAULT_TYPES: dict[str, str] = {
    "DEPOSIT": "1100",
    "WITHDRAWAL": "1110",
    "WITHDRAWAL_MONEY_BACK": "1110",
    "REFUND": "1120",
    "CHARGEBACK": "1120",
    "TRANSFER": "1130",
    "CONVERSION": "1140",
    "TRADE": "4000",
    "TRADE_CORRECTION": "4010",
    "TRADE_SLIPPAGE_PROTECTION": "4010",
    "CORPORATE_ACTION": "4020",
    "BONUS": "4100",
    "REBATE": "4100",
    "WRITE_OFF_OR_CREDIT": "6200",
    "TRADE_COMMISSION": "5000",
    "TRADE_COMMISSION_GSL": "5010",
    "FX_COMMISSION": "5020",
    "SWAP": "6000",
    "INACTIVITY_FEE": "6100",
    "ADJUSTMENT": "6200",
    "VOID": "6200",
    "NEGATIVE_BALANCE_PROTECTION": "6300",
    "COMPLAINT_SETTLEMENT": "6400",
    "RESERVE": "7000",
    "UNRESERVE": "7000",
    "CREDIT_FACILITY": "7010",
}

# What a person calls each documented transaction type (statements show these beside the code).
TYPE_NAMES: dict[str, str] = {
    "DEPOSIT": "Deposit",
    "WITHDRAWAL": "Withdrawal",
    "WITHDRAWAL_MONEY_BACK": "Withdrawal returned",
    "REFUND": "Refund",
    "CHARGEBACK": "Chargeback",
    "TRANSFER": "Transfer between accounts",
    "CONVERSION": "Currency conversion",
    "TRADE": "Trading profit or loss",
    "TRADE_CORRECTION": "Trade correction",
    "TRADE_SLIPPAGE_PROTECTION": "Slippage protection",
    "CORPORATE_ACTION": "Corporate action",
    "BONUS": "Bonus",
    "REBATE": "Rebate",
    "WRITE_OFF_OR_CREDIT": "Write-off or credit",
    "TRADE_COMMISSION": "Trading commission",
    "TRADE_COMMISSION_GSL": "Guaranteed stop premium",
    "FX_COMMISSION": "Currency conversion fee",
    "SWAP": "Overnight financing",
    "INACTIVITY_FEE": "Inactivity fee",
    "ADJUSTMENT": "Adjustment",
    "VOID": "Void",
    "NEGATIVE_BALANCE_PROTECTION": "Negative balance protection",
    "COMPLAINT_SETTLEMENT": "Complaint settlement",
    "RESERVE": "Funds reserved",
    "UNRESERVE": "Funds released",
    "CREDIT_FACILITY": "Credit facility",
}


def type_name(transaction_type: str) -> str:
    """The human name of a transaction type; an undocumented one is spelled out from its code."""
    known = TYPE_NAMES.get(transaction_type)
    if known is not None:
        return known
    words = transaction_type.replace("_", " ").strip().lower()
    return f"{words[:1].upper()}{words[1:]} (undocumented type)" if words else "(no type)"


_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,16}$")


class ChartError(InputError):
    """A chart-of-accounts file that cannot be used; the message names the file and problem."""


@dataclass(frozen=True)
class ChartOfAccounts:
    accounts: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ACCOUNTS))
    types: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TYPES))

    def account_for(self, transaction_type: str) -> tuple[str, bool]:
        """(ledger account code, known) for a transaction type; unknown -> suspense."""
        code = self.types.get(transaction_type)
        return (code, True) if code is not None else (SUSPENSE, False)

    def name_of(self, code: str) -> str:
        return self.accounts.get(code, code)


def load_chart(path: Path | None = None) -> ChartOfAccounts:
    """The default chart, overridden by `path` or `$LEDGER_CHART_OF_ACCOUNTS` when given."""
    if path is None:
        path = chart_path()
    if path is None:
        return ChartOfAccounts()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ChartError(f"cannot read chart of accounts {path}: {exc}") from None
    if not isinstance(data, dict) or set(data) - {"accounts", "types"}:
        raise ChartError(f"{path}: expected an object with 'accounts' and/or 'types'")
    extra_accounts = data.get("accounts", {})
    extra_types = data.get("types", {})
    if not isinstance(extra_accounts, dict) or not isinstance(extra_types, dict):
        raise ChartError(f"{path}: 'accounts' and 'types' must be objects")
    accounts = {**DEFAULT_ACCOUNTS, **{str(k): str(v) for k, v in extra_accounts.items()}}
    types = {**DEFAULT_TYPES, **{str(k): str(v) for k, v in extra_types.items()}}
    for code in accounts:
        if not _CODE.match(code):
            raise ChartError(f"{path}: account code {code!r} must be 1-16 letters/digits")
    unknown = sorted({code for code in types.values() if code not in accounts})
    if unknown:
        raise ChartError(f"{path}: types map to undefined account codes {unknown}")
    return ChartOfAccounts(accounts, types)
