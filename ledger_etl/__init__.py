"""ledger_etl: Capital.com account history to a reconciled ledger and monthly statements."""

__version__ = "0.1.0"
