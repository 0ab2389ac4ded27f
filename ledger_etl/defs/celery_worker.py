"""The Celery application the workers run (`make workers`, scripts/workers.sh):
`celery -A ledger_etl.defs.celery_worker worker -Q <queue>`.

It is dagster-celery's own application and step task (`execute_plan`), built in memory from the
environment: the broker URL of `LEDGER_CELERY_BROKER` (and `LEDGER_CELERY_BACKEND`) and the
settings of `scale.celery_settings` (late acknowledgement, the queue). `dagster-celery worker
start` would instead write the broker URL, password included, into a Python file under
`$DAGSTER_HOME/dagster_celery/config/` at every start; nothing is written here.
"""

from __future__ import annotations

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from ledger_etl.defs.scale import worker_app_arguments

app = make_app(CeleryExecutor.for_cli(**worker_app_arguments()).app_args())
execute_plan = create_task(app)
