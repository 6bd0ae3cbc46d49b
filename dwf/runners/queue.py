"""The Queue runner: enqueue a run or a resume, get the execution id at once; wait, status and
cancel by id.

The execution is created in the store (``pending``) before its job is queued, so its id is
known at once and every process sharing the store can see it. Where the job runs depends on the
adapter:

* :class:`~dwf.runners.inline.InlineAdapter`: a task of this process's event loop (development,
  tests, one-process applications);
* :class:`~dwf.runners.celery_app.CeleryAdapter`: a Celery broker, for ``dwf worker`` processes
  on any number of machines sharing the store (``pip install "dwf[celery]"``).

An adapter is anything with ``in_process``, ``submit(engine, job)`` and ``aclose()``
(:class:`QueueAdapter`); :func:`dwf.runners.jobs.perform` is what a worker does with a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from dwf._frames import to_json_safe
from dwf.engine import RunResult, _sync
from dwf.errors import ConfigurationError, DwfError, InvalidTransition
from dwf.runners.inline import InlineAdapter
from dwf.runners.jobs import Job, resumes_committed
from dwf.storage.base import Status

if TYPE_CHECKING:
    from dwf.dsl.model import WorkflowDefinition
    from dwf.engine import Engine

__all__ = ["QueueAdapter", "QueueRunner"]

T = TypeVar("T")

#: Statuses in which an execution waits for nobody but a person (or is final).
_SETTLED = frozenset({Status.HALTED, Status.COMPLETED, Status.FAILED, Status.CANCELLED})


class QueueAdapter(Protocol):
    """Where queued jobs go. ``submit`` returns once the job is safely queued."""

    #: True when jobs run inside this process (they die with its event loop).
    in_process: bool

    async def submit(self, engine: Engine, job: Job) -> None: ...

    async def aclose(self) -> None: ...


class QueueRunner:
    """Enqueue runs and resumes; wait for, inspect and cancel executions by id.

    Args:
        engine: The engine whose store holds the executions (and, for the inline adapter, the
            engine that runs them, so it needs the services).
        adapter: Where jobs go (default: a new :class:`InlineAdapter`).
        start_within: Seconds after which an execution that is still pending (its job was
            lost: a broker that dropped it, a process that died before running it) is started
            by the housekeeping of any worker, or by ``dwf recover``. ``None``: never.
        poll_interval: The first pause of :meth:`wait` between two reads of the store, in
            seconds; it grows up to ``max_poll_interval``.
        max_poll_interval: The longest pause of :meth:`wait`, in seconds.
    """

    def __init__(
        self,
        engine: Engine,
        adapter: QueueAdapter | None = None,
        *,
        start_within: float | None = 600.0,
        poll_interval: float = 0.01,
        max_poll_interval: float = 0.5,
    ) -> None:
        self.engine = engine
        self.adapter: QueueAdapter = adapter if adapter is not None else InlineAdapter()
        self.start_within = start_within
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        # execution id -> its version when this runner queued a resume for it
        self._resumed_at: dict[str, int] = {}

    async def enqueue_run(
        self,
        workflow: WorkflowDefinition,
        input: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
    ) -> str:
        """Create a pending execution, queue it, and return its id at once.

        Raises:
            InputValidationError: The input does not match the workflow's ``inputs`` (nothing
                is created).
            DwfError: The job could not be queued (the execution is cancelled; try again).
        """
        new_id = await self.engine.start(
            workflow, input, execution_id=execution_id, start_within=self.start_within
        )
        try:
            await self.adapter.submit(self.engine, Job.run(new_id))
        except Exception as exc:
            # Nothing may start it later by surprise: the caller is told it did not happen.
            with contextlib.suppress(DwfError):
                await self.engine.cancel(new_id)
            raise DwfError(
                f"could not queue execution {new_id} of workflow '{workflow.id}': {exc}. It "
                "was cancelled; check the broker and enqueue the run again",
                execution_id=new_id,
            ) from exc
        return new_id

    async def enqueue_resume(
        self,
        execution_id: str,
        *,
        approved: bool | None = None,
        response: Any = None,
        by: str | None = None,
    ) -> str:
        """Queue the answer to a halted execution; return its id at once.

        The answer applies to the halt the execution is in now, and only to it: if the halt
        is answered (or times out) before the job runs, the job does nothing.

        Raises:
            InvalidTransition: The execution is not halted, or is a sub-workflow.
            ExecutionNotFound: No execution has that id.
        """
        record = await self.engine.get(execution_id)
        if record.parent_id is not None:
            raise InvalidTransition(
                f"execution {execution_id} is a sub-workflow of {record.parent_id}; resume "
                f"{record.parent_id} instead",
                execution_id=execution_id,
            )
        if record.status != Status.HALTED:
            raise InvalidTransition(
                f"execution {execution_id} is {record.status}; only halted executions can be "
                "resumed",
                execution_id=execution_id,
                status=str(record.status),
            )
        if approved is None and response is None:
            raise InvalidTransition(
                f"say how to resume execution {execution_id}: approved=True/False or a response",
                execution_id=execution_id,
            )
        job = Job(
            "resume",
            execution_id,
            approved=approved,
            response=None if response is None else to_json_safe(response, "the resume response"),
            by=by,
            resumes_seen=await resumes_committed(self.engine, execution_id),
        )
        await self.adapter.submit(self.engine, job)
        self._resumed_at[execution_id] = record.version
        return execution_id

    async def status(self, execution_id: str) -> RunResult:
        """The execution as stored now (status ``pending`` while its job waits in the queue)."""
        return RunResult.from_record(await self.engine.get(execution_id))

    async def wait(self, execution_id: str, timeout: float | None = None) -> RunResult:  # noqa: ASYNC109
        """Wait until the execution is completed, failed, cancelled or halted (after a resume
        this runner queued: halted again), and return it.

        Raises:
            TimeoutError: ``timeout`` seconds passed first; the execution goes on.
        """
        give_up = None if timeout is None else time.monotonic() + timeout
        pause = self.poll_interval
        resumed_at = self._resumed_at.get(execution_id)
        while True:
            record = await self.engine.get(execution_id)
            moved_on = resumed_at is None or record.version > resumed_at
            if record.status in _SETTLED and moved_on:
                self._resumed_at.pop(execution_id, None)
                return RunResult.from_record(record)
            if give_up is not None and time.monotonic() + pause > give_up:
                raise TimeoutError(
                    f"execution {execution_id} is still {record.status} after {timeout:g} s; "
                    "wait again, or check that a worker runs (dwf worker, dwf recover --loop)"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, self.max_poll_interval)

    async def cancel(self, execution_id: str) -> RunResult:
        """Cancel a pending or halted execution now; a running one (in any process) stops at
        a step boundary: its owner notices within a third of its lease, or at its next step."""
        return await self.engine.cancel(execution_id)

    async def aclose(self) -> None:
        """Close the adapter (the inline one cancels its jobs). The engine stays open."""
        await self.adapter.aclose()

    # -- sync wrappers ---------------------------------------------------------------------------

    def enqueue_run_sync(
        self, workflow: WorkflowDefinition, input: Mapping[str, Any] | None = None, **kw: Any
    ) -> str:
        """:meth:`enqueue_run` for synchronous callers (a broker adapter only)."""
        return self._blocking(self.enqueue_run(workflow, input, **kw), "enqueue_run")

    def enqueue_resume_sync(self, execution_id: str, **kw: Any) -> str:
        """:meth:`enqueue_resume` for synchronous callers (a broker adapter only)."""
        return self._blocking(self.enqueue_resume(execution_id, **kw), "enqueue_resume")

    def wait_sync(self, execution_id: str, timeout: float | None = None) -> RunResult:
        """:meth:`wait` for synchronous callers (a broker adapter only)."""
        return self._blocking(self.wait(execution_id, timeout), "wait")

    def status_sync(self, execution_id: str) -> RunResult:
        """:meth:`status` for synchronous callers."""
        return self._blocking(self.status(execution_id), "status")

    def cancel_sync(self, execution_id: str) -> RunResult:
        """:meth:`cancel` for synchronous callers."""
        return self._blocking(self.cancel(execution_id), "cancel")

    def _blocking(self, coro: Coroutine[Any, Any, T], name: str) -> T:
        if self.adapter.in_process and name in ("enqueue_run", "enqueue_resume", "wait"):
            coro.close()
            raise ConfigurationError(
                f"{name}_sync() cannot be used with {type(self.adapter).__name__}: its jobs run "
                "on the caller's event loop, which asyncio.run() would stop; use `await "
                f"runner.{name}(...)`, or a broker adapter (CeleryAdapter)"
            )
        return _sync(coro, name)
