"""Execution beyond one process: the Celery executor, chosen by the environment, and the
per-login run tag that the PostgreSQL profile's run queue limits (dagster_home/postgres/).

Nothing changes unless `LEDGER_EXECUTOR=celery` is set: the code location then hands every step
of the history jobs to Celery workers (`make workers`), which pick them from the broker named by
`LEDGER_CELERY_BROKER`. The broker URL is read from the environment by name, so the Dagster UI
shows the variable, never its value (a RabbitMQ URL carries a password).
"""

from __future__ import annotations

import dagster as dg

from ledger_etl.settings import scale_settings

EXECUTOR_VARIABLE = "LEDGER_EXECUTOR"
BROKER_VARIABLE = "LEDGER_CELERY_BROKER"
BACKEND_VARIABLE = "LEDGER_CELERY_BACKEND"
LOGIN_VARIABLE = "LEDGER_LOGIN"
# The run tag the PostgreSQL profile's `tag_concurrency_limits` counts: one run per login.
LOGIN_TAG = "ledger_etl/login"
DEFAULT_LOGIN = "default"
IN_PROCESS = ("", "default", "multiprocess")


class ExecutorChoiceError(ValueError):
    """`LEDGER_EXECUTOR` names an executor this project does not offer."""


def login_name(environ: dict[str, str] | None = None) -> str:
    """The name of the Capital.com login this code location serves (`LEDGER_LOGIN`)."""
    return scale_settings(environ)[LOGIN_VARIABLE] or DEFAULT_LOGIN


def login_tags(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Tags every history run carries, so the run queue can limit runs per login."""
    return {LOGIN_TAG: login_name(environ)}


def executor_from_environment(
    environ: dict[str, str] | None = None,
) -> dg.ExecutorDefinition | None:
    """The Celery executor when `LEDGER_EXECUTOR=celery`; None (Dagster's default) otherwise.

    dagster-celery is an optional dependency (`pip install 'ledger_etl[scale]'`): it is imported
    only when chosen, so a one-machine install never needs it.
    """
    env = scale_settings(environ)
    choice = env[EXECUTOR_VARIABLE].lower()
    if choice in IN_PROCESS:
        return None
    if choice != "celery":
        raise ExecutorChoiceError(
            f"{EXECUTOR_VARIABLE}={choice!r} is not an executor; use 'celery' or leave it unset"
        )
    if not env[BROKER_VARIABLE]:
        raise ExecutorChoiceError(
            f"{EXECUTOR_VARIABLE}=celery needs {BROKER_VARIABLE}, e.g. "
            "amqp://guest:guest@127.0.0.1:5672// or redis://127.0.0.1:6379/0"
        )
    try:
        from dagster_celery import celery_executor
    except ImportError as error:
        raise ExecutorChoiceError(
            f"{EXECUTOR_VARIABLE}=celery needs dagster-celery: pip install 'ledger_etl[scale]'"
        ) from error
    config: dict[str, object] = {"broker": {"env": BROKER_VARIABLE}}
    if env[BACKEND_VARIABLE]:
        config["backend"] = {"env": BACKEND_VARIABLE}
    return celery_executor.configured(config, name="celery")
