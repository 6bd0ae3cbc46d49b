"""Fault test 3: PostgreSQL restarts in the middle of a run.

Two ``dwf worker`` processes run 40 executions of a 20-step workflow; the database is stopped
(``pg_ctl stop -m fast``: every session is terminated, commits in flight included) while they
run, and started again seconds later. The workers report the error and retry with backoff; once
the database is back every execution completes, each step committed exactly once: nothing is
lost, nothing is done twice in the store.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("celery", reason='needs the celery extra: pip install "dwf[celery]"')
pytest.importorskip("psycopg", reason='needs the postgres extra: pip install "dwf[postgres]"')

_TESTS = Path(__file__).parent
sys.path[:0] = [str(_TESTS / "storage"), str(_TESTS / "fixtures" / "faults")]

from lab import (  # noqa: E402
    SERVICES,
    TWENTY_STEPS,
    Lab,
    RestartablePostgres,
    assert_each_step_committed_once,
    assert_single_owner,
    count_status,
    restartable_postgres,
)
from servers import redis_server, with_options  # noqa: E402

import dwf  # noqa: E402
from dwf.runners.celery_app import CeleryAdapter  # noqa: E402
from dwf.runners.queue import QueueRunner  # noqa: E402

pytestmark = pytest.mark.slow

EXECUTIONS = 40
OUTAGE_SECONDS = 3.0


@pytest.fixture
def postgres() -> Iterator[RestartablePostgres]:
    with restartable_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


def test_a_database_restart_mid_run_loses_nothing_and_the_workers_retry_with_backoff(
    tmp_path: Path, postgres: RestartablePostgres, redis_url: str
) -> None:
    # A short pool timeout: a worker that waits for a connection reports the outage in 2 s.
    store = with_options(postgres.url, schema="dwf", pool_timeout="2")
    lab = Lab(tmp_path, store)
    queue = f"dwf-{uuid.uuid4().hex[:8]}"
    workflow = dwf.load_workflow(TWENTY_STEPS)

    async def enqueue() -> list[str]:
        engine = dwf.Engine(store)
        runner = QueueRunner(engine, CeleryAdapter(redis_url, queue=queue))
        try:
            return [await runner.enqueue_run(workflow, {"pause": 0.02}) for _ in range(EXECUTIONS)]
        finally:
            await runner.aclose()
            await engine.close()

    try:
        for name in ("w1", "w2"):
            lab.start(
                name, "worker", "--broker", redis_url, "--queue", queue, "--services", SERVICES,
                "--concurrency", "4", "--recover-interval", "0.5", "--loglevel", "INFO",
            )  # fmt: skip
        execution_ids = asyncio.run(enqueue())
        lab.wait_until("a quarter of the steps ran", lambda: lab.steps_started() > 200)

        postgres.stop("fast")
        stopped_at = lab.steps_started()
        time.sleep(OUTAGE_SECONDS)  # the outage itself: nothing to wait for but the clock
        postgres.start()

        lab.wait_until(
            "every execution completed",
            lambda: count_status(lab, "completed") == EXECUTIONS,
            timeout=90,
        )
    finally:
        lab.stop_all()

    assert stopped_at < EXECUTIONS * 20  # the outage hit the middle of the run
    assert_each_step_committed_once(lab, execution_ids)
    assert_single_owner(lab, lab.calls())
    logs = lab.logs(tail=None)
    assert "the store failed" in logs  # reported...
    assert "Retrying in" in logs  # ...and retried
    assert "Traceback" not in logs
