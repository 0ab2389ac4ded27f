"""Account discovery across logins: every login's accounts, each login on its own client.

With one login (no credentials file) the keys are the bare account ids, as they always were;
with a credentials file they are `<login>/<accountId>`. A login that fails is kept in
`failures` with the reason (the client's errors never hold a secret) and the others go on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import dagster as dg

from ledger_etl.capital.errors import CapitalError
from ledger_etl.defs.resources import CapitalApiResource
from ledger_etl.errors import InputError
from ledger_etl.logins import account_key


@dataclass
class LoginAccounts:
    keys: list[str] = field(default_factory=list)  # sorted account partition keys
    failures: dict[str, str] = field(default_factory=dict)  # login -> why it failed


def list_login_accounts(
    capital: CapitalApiResource,
    log: dg.DagsterLogManager | logging.Logger | None = None,
) -> LoginAccounts:
    """Every login's accounts as partition keys; the logins that failed, with the reason."""
    logins = capital.logins()
    found = LoginAccounts()
    if logins is None:
        with capital.open_client(log) as client:
            found.keys = sorted(a.account_id for a in client.accounts())
        return found
    for login in logins:
        try:
            with capital.open_client(log, login=login.name) as client:
                ids = [a.account_id for a in client.accounts()]
        except (CapitalError, InputError) as error:
            found.failures[login.name] = str(error)
            continue
        found.keys += [account_key(login.name, i) for i in ids]
    found.keys.sort()
    return found
