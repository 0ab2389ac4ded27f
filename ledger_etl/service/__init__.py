"""The read service: statements and the ledger over HTTP for finance and risk users.

Thin by design: a request is authenticated and scoped (`auth`), handed to a domain read
function (`statements.published`, `service.entries`), answered, and audited (`audit`). It holds
no broker credentials and serves only files whose sha256 matches their manifest.
"""
