"""Choosing the executor and the per-login run tag from the environment: nothing set keeps
Dagster's default; a wrong choice or a missing broker is a clear error naming the variable."""

import pytest

from ledger_etl.defs.history.automation import close_month_job, sync_job
from ledger_etl.defs.scale import (
    LOGIN_TAG,
    ExecutorChoiceError,
    executor_from_environment,
    login_tags,
    worker_app_arguments,
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


def test_workers_hand_back_a_step_whose_worker_died() -> None:
    """The workers' Celery app (ledger_etl/defs/celery_worker.py) takes the broker from the
    environment and acknowledges a step only once it has finished."""
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app

    broker = "amqp://guest:s3cret@127.0.0.1:5672//"
    arguments = worker_app_arguments({"LEDGER_CELERY_BROKER": f" {broker} "})
    app = make_app(CeleryExecutor.for_cli(**arguments).app_args())
    assert app.conf.broker_url == broker
    assert app.conf.result_backend == "rpc://"
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.task_default_queue == "dagster"
    queue = worker_app_arguments({"LEDGER_CELERY_BROKER": broker, "LEDGER_CELERY_QUEUE": "eu"})
    assert queue["config_source"]["task_default_queue"] == "eu"
    backend = "redis://:pw@127.0.0.1:6379/1"
    arguments = worker_app_arguments(
        {"LEDGER_CELERY_BROKER": broker, "LEDGER_CELERY_BACKEND": backend}
    )
    assert make_app(CeleryExecutor.for_cli(**arguments).app_args()).conf.result_backend == backend
    with pytest.raises(ExecutorChoiceError, match="need LEDGER_CELERY_BROKER"):
        worker_app_arguments({})


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
