import pickle

import pytest

from ledger_etl.capital.errors import (
    RETRY_ALWAYS,
    RETRY_NEVER,
    RETRY_READS,
    ApiError,
    AuthenticationError,
    CapitalError,
    MalformedResponseError,
    RateLimitedError,
    TransientError,
    WindowSplitError,
    classify_status,
    error_code_of,
)


def test_messages_name_method_path_status_and_code():
    error = ApiError(400, "error.invalid.daterange", "get", "/history/activity", params={"a": "b"})
    assert str(error) == "GET /history/activity -> 400 error.invalid.daterange"
    assert (error.status, error.error_code, error.method, error.path) == (
        400,
        "error.invalid.daterange",
        "GET",
        "/history/activity",
    )
    assert str(ApiError(404, None, "GET", "/x")) == "GET /x -> 404 (no errorCode)"
    limited = RateLimitedError(429, "error.too-many.requests", "GET", "/x", attempts=6)
    assert str(limited) == "GET /x -> 429 error.too-many.requests after 6 attempts"
    timeout = TransientError("GET", "/x", "ReadTimeout", attempts=3)
    assert str(timeout) == "GET /x -> ReadTimeout after 3 attempts"


def test_malformed_keeps_only_a_digest_of_the_body():
    body = b"<html>secret-looking page</html>"
    error = MalformedResponseError.for_body("GET", "/accounts", 200, body, "not JSON", attempts=2)
    assert "secret-looking" not in str(error) and "secret-looking" not in repr(vars(error))
    assert len(error.body_sha256) == 12 and error.body_length == len(body)
    assert str(error).startswith("GET /accounts -> 200 malformed body: not JSON")


def test_hierarchy():
    for cls in (ApiError, TransientError, MalformedResponseError, WindowSplitError):
        assert issubclass(cls, CapitalError)
    assert issubclass(AuthenticationError, ApiError) and issubclass(RateLimitedError, ApiError)


@pytest.mark.parametrize(
    "error",
    [
        ApiError(400, "x", "GET", "/p", params={"from": "2026-01-01T00:00:00"}),
        AuthenticationError(401, "error.invalid.details", "POST", "/session"),
        RateLimitedError(429, None, "GET", "/p", attempts=3),
        TransientError("GET", "/p", "HTTP 503", status=503, attempts=2),
        MalformedResponseError.for_body("GET", "/p", 200, b"<", "not JSON"),
    ],
)
def test_errors_survive_pickling(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error) and vars(copy) == vars(error)


@pytest.mark.parametrize(
    ("status", "code", "cls", "retry"),
    [
        (429, "error.too-many.requests", RateLimitedError, RETRY_ALWAYS),
        (500, None, TransientError, RETRY_READS),
        (503, "error.service.unavailable", TransientError, RETRY_READS),
        (401, "error.invalid.session.token", AuthenticationError, RETRY_NEVER),
        (400, "error.invalid.from", ApiError, RETRY_NEVER),
        (404, "error.not-found.dealId", ApiError, RETRY_NEVER),
    ],
)
def test_classification_table(status, code, cls, retry):
    error, how = classify_status(status, code, "GET", "/p", attempts=1)
    assert type(error) is cls and how == retry


def test_error_code_of():
    assert error_code_of(b'{"errorCode": "error.null.api.key"}') == "error.null.api.key"
    assert error_code_of(b"<html>") is None
    assert error_code_of(b'{"errorCode": 5}') is None
    assert error_code_of(b"[]") is None
