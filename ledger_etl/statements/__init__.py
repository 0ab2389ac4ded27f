"""Monthly statements: build from the ledger, publish as CSV, XLSX, JSON and Parquet, verify.

No Dagster here: the CLI and the Dagster assets both call `publish_statement` and `verify_tree`.
"""

from ledger_etl.statements.build import build_statement
from ledger_etl.statements.export import ALL_FORMATS, PublishResult, publish_statement
from ledger_etl.statements.model import Statement, StatementInputs
from ledger_etl.statements.paths import (
    StatementError,
    UnsafeNameError,
    parse_month,
    validate_account_id,
)
from ledger_etl.statements.query import list_accounts, read_statement_inputs
from ledger_etl.statements.verify import verify_tree

__all__ = [
    "ALL_FORMATS",
    "PublishResult",
    "Statement",
    "StatementError",
    "StatementInputs",
    "UnsafeNameError",
    "build_statement",
    "list_accounts",
    "parse_month",
    "publish_statement",
    "read_statement_inputs",
    "validate_account_id",
    "verify_tree",
]
