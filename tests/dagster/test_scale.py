"""Choosing the executor and the per-login run tag from the environment: nothing set keeps
Dagster's default; a wrong choice or a missing broker is a clear error naming the variable."""

import pytest

from ledger_etl.defs.history.automation import close_month_job, sync_job
from ledger_etl.defs.scale import (
    LOGIN_TAG,
    ExecutorChoiceError,
    executor_from_environment,
    login_tags,
)


def test_nothing_set_keeps_the_default_executor() -> None:
    assert executor_from_environment({}) is None
    assert executor_from_environment({"LEDGER_EXECUTOR": "multiprocess"}) is None


def test_celery_is_configured_from_variables_never_values() -> None:
    secret = "amqp://guest:s3cret@127.0.0.1:5672//"
    executor = executor_from_environment(
        {"LEDGER_EXECUTOR": "Celery", "LEDGER_CELERY_BROKER": secret}
    )
    assert executor is not None and executor.name == "celery"
    assert "s3cret" not in repr(executor.config_schema)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"LEDGER_EXECUTOR": "dask"}, "'dask' is not an executor"),
        ({"LEDGER_EXECUTOR": "celery"}, "needs LEDGER_CELERY_BROKER"),
    ],
)
def test_a_wrong_choice_names_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ExecutorChoiceError, match=message):
        executor_from_environment(environ)


def test_history_runs_carry_the_login_tag() -> None:
    assert login_tags({}) == {LOGIN_TAG: "default"}
    assert login_tags({"LEDGER_LOGIN": " ops-eu "}) == {LOGIN_TAG: "ops-eu"}
    for job in (close_month_job, sync_job):
        assert LOGIN_TAG in job.tags
