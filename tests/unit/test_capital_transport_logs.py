"""httpcore's DEBUG trace prints response headers; session tokens must not get through."""

import logging

import httpx

from ledger_etl.capital import CapitalClient
from ledger_etl.capital.client import _MASK_SECRET_HEADERS, mask_transport_logs

TRACE = (
    "receive_response_headers.complete return_value=(b'HTTP/1.1', 200, b'OK', "
    "[(b'content-type', b'application/json'), (b'CST', b'CST-SECRET-1'), "
    "(b'X-SECURITY-TOKEN', b'XST-SECRET-2'), (b'x-cap-api-key', b\"KEY-'SECRET-3\")])"
)
SECRETS = ("CST-SECRET-1", "XST-SECRET-2", "SECRET-3")


def test_creating_a_client_masks_token_headers_in_transport_traces(caplog):
    CapitalClient(
        "http://capital.test", "k", "me@example.com", "pw",
        transport=httpx.MockTransport(lambda request: httpx.Response(200)),
    ).close()  # fmt: skip
    caplog.set_level(logging.DEBUG)
    for name in ("httpcore.http11", "httpcore.http2"):
        logging.getLogger(name).debug(TRACE)
        logging.getLogger(name).debug("%s", TRACE)  # pre-formatted or not
    assert len(caplog.records) == 4
    for record in caplog.records:
        message = record.getMessage()
        assert not any(secret in message for secret in SECRETS), message
        assert "(b'CST', b'***')" in message and "(b'X-SECURITY-TOKEN', b'***')" in message
        assert "(b'content-type', b'application/json')" in message
    assert not any(secret in caplog.text for secret in SECRETS)


def test_masking_is_installed_once_and_leaves_other_records_alone(caplog):
    mask_transport_logs()
    mask_transport_logs()
    assert logging.getLogger("httpcore.http11").filters.count(_MASK_SECRET_HEADERS) == 1
    caplog.set_level(logging.DEBUG)
    logging.getLogger("httpcore.connection").debug("connect_tcp.started host=%r", "127.0.0.1")
    assert caplog.records[0].getMessage() == "connect_tcp.started host='127.0.0.1'"
