"""Fault test 4: durable deadlines fire while a worker runs, with nobody calling resume.

* An approval with a 2-second timeout takes its ``on_timeout`` branch within a few seconds of
  its deadline, fired by the housekeeping of a ``dwf worker``.
* A pending execution whose workflow deadline passed before any worker started it fails with
  ``WorkflowTimeout``.
* The same approval with ``dwf recover --loop`` instead of a Celery worker.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery", reason='needs the celery extra: pip install "dwf[celery]"')
pytest.importorskip("psycopg", reason='needs the postgres extra: pip install "dwf[postgres]"')

_TESTS = Path(__file__).parent
sys.path[:0] = [str(_TESTS / "storage"), str(_TESTS / "fixtures" / "faults")]

from lab import APPROVAL_TIMEOUT, HERE, SERVICES, Lab  # noqa: E402
from servers import postgres_server, redis_server, with_options  # noqa: E402

import dwf  # noqa: E402
from dwf.runners.celery_app import CeleryAdapter  # noqa: E402
from dwf.runners.queue import QueueRunner  # noqa: E402

pytestmark = pytest.mark.slow

#: How late after its deadline a timer may fire: the housekeeping round (0.5 s here) plus
#: scheduling slack on a busy machine.
LATENESS_SECONDS = 3.0


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


async def settle(engine: dwf.Engine, execution_id: str, timeout: float) -> Any:  # noqa: ASYNC109
    """The execution once it is completed or failed (polled; bounded by ``timeout``)."""
    give_up = time.monotonic() + timeout
    while True:
        record = await engine.get(execution_id)
        if record.status in ("completed", "failed") or time.monotonic() > give_up:
            return record
        await asyncio.sleep(0.05)


def test_an_approval_timeout_fires_on_time_while_a_celery_worker_runs(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    store = with_options(postgres_url, schema=f"t_{uuid.uuid4().hex[:12]}")
    lab = Lab(tmp_path, store)
    queue = f"dwf-{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[Any, float, Any]:
        engine = dwf.Engine(store)
        runner = QueueRunner(engine, CeleryAdapter(redis_url, queue=queue))
        try:
            approval = await runner.enqueue_run(dwf.load_workflow(APPROVAL_TIMEOUT))
            halted = await runner.wait(approval, timeout=20)
            assert halted.status == "halted"
            deadline = (await engine.get(approval)).wake_at
            assert deadline is not None
            # Nobody resumes: the worker's housekeeping fires the timeout.
            timed_out = await settle(engine, approval, timeout=deadline - time.time() + 20)
            settled_at = time.time()
            late = await engine.start(dwf.load_workflow(HERE / "deadline.yml"))  # no job queued
            failed = await settle(engine, late, timeout=20)
            return timed_out, settled_at - deadline, failed
        finally:
            await runner.aclose()
            await engine.close()

    try:
        lab.start(
            "w1", "worker", "--broker", redis_url, "--queue", queue, "--services", SERVICES,
            "--recover-interval", "0.5",
        )  # fmt: skip
        timed_out, lateness, failed = asyncio.run(scenario())
    finally:
        lab.stop_all()

    assert timed_out.status == "completed", lab.logs()
    assert timed_out.output == {"decision": "expired"}  # the on_timeout branch
    assert 0 <= lateness < LATENESS_SECONDS
    assert failed.status == "failed"
    assert failed.error["type"] == "WorkflowTimeout"


def test_an_approval_timeout_fires_on_time_with_a_recover_loop(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/dwf.db"
    lab = Lab(tmp_path, store)

    async def scenario() -> tuple[Any, float]:
        engine = dwf.Engine(store)
        try:
            halted = await engine.run(dwf.load_workflow(APPROVAL_TIMEOUT))
            deadline = (await engine.get(halted.execution_id)).wake_at
            assert deadline is not None
            timed_out = await settle(engine, halted.execution_id, deadline - time.time() + 20)
            return timed_out, time.time() - deadline
        finally:
            await engine.close()

    try:
        lab.start("r1", "recover", "--loop", "0.5")
        timed_out, lateness = asyncio.run(scenario())
    finally:
        lab.stop_all()

    assert timed_out.status == "completed", lab.logs()
    assert timed_out.output == {"decision": "expired"}
    assert 0 <= lateness < LATENESS_SECONDS
