"""The inline queue adapter: jobs run as tasks on the current event loop.

For development and tests, and for one-process applications: nothing to install, nothing to
start. Jobs live in this process only; if it dies, the executions they were running are
continued by ``dwf recover`` (their owner is gone), and pending ones by
``dwf recover --loop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from dwf.errors import StoreError
from dwf.runners.jobs import Job, perform

if TYPE_CHECKING:
    from dwf.engine import Engine

__all__ = ["InlineAdapter"]

logger = logging.getLogger("dwf")


class InlineAdapter:
    """Runs each queued job as an asyncio task of the event loop that enqueued it.

    A job whose store call fails (the database is down) is retried with exponential backoff,
    from ``retry_delay`` up to ``max_retry_delay`` seconds, until it goes through.

    Args:
        retry_delay: The first wait before a retry, in seconds.
        max_retry_delay: The longest wait between retries, in seconds.
    """

    #: The jobs live in this process: the sync wrappers of :class:`QueueRunner` refuse it,
    #: because ``asyncio.run`` would cancel them when it returns.
    in_process = True

    def __init__(self, *, retry_delay: float = 0.2, max_retry_delay: float = 30.0) -> None:
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, engine: Engine, job: Job) -> None:
        """Start the job in the background and return at once."""
        task = asyncio.get_running_loop().create_task(
            self._perform(engine, job), name=f"dwf {job.kind} {job.execution_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def join(self) -> None:
        """Wait until every submitted job (and any job they submitted) has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel the jobs still running (their executions stay recoverable) and wait for them."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _perform(self, engine: Engine, job: Job) -> None:
        delay = self.retry_delay
        while True:
            try:
                outcome = await perform(engine, job)
            except StoreError as exc:
                logger.warning(
                    "queued %s of execution %s: the store failed (%s); retrying in %.1f s",
                    job.kind, job.execution_id, exc.message, delay,
                )  # fmt: skip
            except Exception:  # a failing job must not kill the loop; the error is the report
                logger.exception("queued %s of execution %s failed", job.kind, job.execution_id)
                return
            else:
                if outcome.status != "retry":
                    logger.debug("queued %s of %s: %s", job.kind, job.execution_id, outcome)
                    return
                logger.info("queued %s of %s: %s", job.kind, job.execution_id, outcome.reason)
            await asyncio.sleep(delay)
            delay = min(delay * 2.0, self.max_retry_delay)
