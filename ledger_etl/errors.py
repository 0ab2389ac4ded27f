"""The root of the errors this package raises for a person to read.

Every error the package raises on purpose derives from `LedgerEtlError`, and its message says
what went wrong and, where it can, what to do. `InputError` marks the ones caused by what a
person gave (an argument, a setting, a name, a file): the command line answers those with exit
status 2, like any other usage error. The CLI maps the rest to exit codes in one table
(`ledger_etl.cli.EXIT_CODES`).
"""

from __future__ import annotations


class LedgerEtlError(Exception):
    """An error meant for a person: its message is one clear line without secrets."""


class InputError(LedgerEtlError, ValueError):
    """An argument, setting, name or file that is not acceptable; the message names it."""
