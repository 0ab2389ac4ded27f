"""Execution beyond one process: the Celery executor, chosen by the environment, and the
per-login run tag that the PostgreSQL profile's run queue limits (dagster_home/postgres/).

Nothing changes unless `LEDGER_EXECUTOR=celery` is set: the code location then hands every step
of the history jobs to Celery workers (`make workers`), which pick them from the broker named by
`LEDGER_CELERY_BROKER`. The broker URL is read from the environment by name, so the Dagster UI
shows the variable, never its value (a RabbitMQ URL carries a password).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from ledger_etl.capital.ratelimit import SERVER_WINDOW_GUARD, WINDOW_SECONDS
from ledger_etl.logins import split_account_key
from ledger_etl.settings import credentials_file, scale_settings

EXECUTOR_VARIABLE = "LEDGER_EXECUTOR"
BROKER_VARIABLE = "LEDGER_CELERY_BROKER"
BACKEND_VARIABLE = "LEDGER_CELERY_BACKEND"
QUEUE_VARIABLE = "LEDGER_CELERY_QUEUE"
DEFAULT_QUEUE = "dagster"  # dagster-celery's
LOGIN_VARIABLE = "LEDGER_LOGIN"
# The run tag the PostgreSQL profile's `tag_concurrency_limits` counts: one run per login.
LOGIN_TAG = "ledger_etl/login"
DEFAULT_LOGIN = "default"
# The Dagster pool of the API steps of one login: one step at a time per login, across runs and
# Celery workers. The single login keeps the name it always had; each login of a credentials
# file gets `capital_api/<login>`, so logins run side by side, each at its own rate.
API_POOL = "capital_api"
_LONGEST_WAIT = 2.0
# A step waits this long for its login's slot, then gives its worker back and is retried.
SLOT_WAIT_LIMIT = 60.0
SLOT_RETRIES = 60
SLOT_RETRY_WAIT = 5.0
IN_PROCESS = ("", "default", "multiprocess")
# Celery settings of the run process (the executor) and of the workers (celery_worker.py) alike.
# A step's task is acknowledged when it has finished, not when a worker takes it (`acks_late`),
# and a task whose worker process died is handed back to the broker (`reject_on_worker_lost`):
# the broker then gives the step to another worker and the run goes on. A worker killed mid-step
# loses nothing; the step runs again from its start, and its writes are idempotent (a step run
# twice stores nothing twice). With one step at a time per worker (prefetch 1), a worker holds
# at most the step it is running.
CELERY_SETTINGS: dict[str, object] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
}


def celery_settings(environ: dict[str, str] | None = None) -> dict[str, object]:
    """`CELERY_SETTINGS` and the queue steps are sent to (`LEDGER_CELERY_QUEUE`, `dagster` when
    unset; the workers listen on it, scripts/workers.sh). Deployments that share a broker (and
    virtual host) need a queue each, or their workers take each other's steps."""
    queue = scale_settings(environ)[QUEUE_VARIABLE] or DEFAULT_QUEUE
    return {**CELERY_SETTINGS, "task_default_queue": queue}


class ExecutorChoiceError(ValueError):
    """`LEDGER_EXECUTOR` names an executor this project does not offer."""


def login_name(environ: dict[str, str] | None = None) -> str:
    """The name of the Capital.com login this code location serves (`LEDGER_LOGIN`)."""
    return scale_settings(environ)[LOGIN_VARIABLE] or DEFAULT_LOGIN


def login_tags(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Tags every history run of the single login carries, so the run queue can limit runs per
    login. With a credentials file (several logins) each run's login comes from its partition
    instead (`account_login_tags`, and the PostgreSQL profile's run queue, `run_queue.py`)."""
    if credentials_file(environ) is not None:
        return {}
    return {LOGIN_TAG: login_name(environ)}


def account_login_tags(account_key: str) -> dict[str, str]:
    """The login tag of a run of `account_key` (`<login>/<accountId>`); none for a bare id."""
    login = split_account_key(account_key)[0]
    return {} if login is None else {LOGIN_TAG: login}


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
    config: dict[str, object] = {
        "broker": {"env": BROKER_VARIABLE},
        "config_source": celery_settings(environ),
    }
    if env[BACKEND_VARIABLE]:
        config["backend"] = {"env": BACKEND_VARIABLE}
    return celery_executor.configured(config, name="celery")


def worker_app_arguments(environ: dict[str, str] | None = None) -> dict[str, object]:
    """What the workers' Celery app is built from: the broker (and result backend) URLs read
    from the environment at start, kept in memory, and `celery_settings`."""
    env = scale_settings(environ)
    if not env[BROKER_VARIABLE]:
        raise ExecutorChoiceError(
            f"Celery workers need {BROKER_VARIABLE}, e.g. amqp://guest:guest@127.0.0.1:5672//"
        )
    return {
        "broker": env[BROKER_VARIABLE],
        "backend": env[BACKEND_VARIABLE] or None,
        "config_source": celery_settings(environ),
    }


def login_pool(login: str | None) -> str:
    """The concurrency pool of `login`'s API steps (None: the single login)."""
    return API_POOL if login is None else f"{API_POOL}/{login}"


def ensure_login_pool(instance: dg.DagsterInstance, login: str | None) -> bool:
    """Give `login`'s pool the instance's default limit unless it has one; True when the pool
    is limited. Discovery calls this for every login, so runs seldom race to create it (on
    PostgreSQL the loser of that race gets an error, and then finds the winner's row)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return False
    pool = login_pool(login)
    if pool in storage.get_concurrency_keys():
        return True
    try:
        storage.initialize_concurrency_limit_to_default(pool)
    except Exception as error:  # another process created it first: looked up below
        logging.getLogger(__name__).debug("pool %s: %s", pool, error)
    return pool in storage.get_concurrency_keys()


@contextmanager
def login_slot(context: dg.AssetExecutionContext, login: str | None) -> Iterator[None]:
    """Hold a slot of `login`'s pool (Dagster's own concurrency slots, in the instance's
    storage) while the body runs; wait while another step of the login holds it.

    A pool is a fixed name per asset in Dagster, and the assets serve every login, so the slot
    is claimed here, per login, with the same storage calls Dagster's executor makes. A pool
    with no limit (no `pools.default_limit`, none set) lets every step through. The daemon
    frees the slots of a run that died with its worker.
    """
    storage = context.instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        yield
        return
    pool = login_pool(login)
    if not ensure_login_pool(context.instance, login):
        yield  # a pool without a limit
        return
    run_id = context.run.run_id
    step_key = context.op_execution_context.get_step_execution_context().step.key
    try:
        began, logged = time.monotonic(), False
        while True:
            status = storage.claim_concurrency_slot(pool, run_id, step_key)
            if status.is_claimed:
                break
            if not logged:
                context.log.info(f"waiting for a slot of pool {pool}")
                logged = True
            if time.monotonic() - began > SLOT_WAIT_LIMIT:
                # The holder may be a step whose worker died: its task waits on the broker for
                # a free worker while this step, waiting here, holds one. Give the worker back
                # and try again later (this step's place in the queue is dropped below).
                context.log.info(f"no slot of pool {pool} in {SLOT_WAIT_LIMIT:.0f} s; retrying")
                raise dg.RetryRequested(max_retries=SLOT_RETRIES, seconds_to_wait=SLOT_RETRY_WAIT)
            time.sleep(min(status.sleep_interval or 0.5, _LONGEST_WAIT))
        yield
    finally:
        # The next holder is another process whose pacing knows nothing of this one's last
        # second of requests: keep the slot until that second has passed (the server counts
        # any one second, across clients of the key).
        time.sleep(WINDOW_SECONDS + SERVER_WINDOW_GUARD)
        storage.free_concurrency_slot_for_step(run_id, step_key)
