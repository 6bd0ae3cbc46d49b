"""The Celery queue adapter and the Celery application of ``dwf worker`` (extra ``celery``).

Producers (an application, the MCP server) queue jobs through :class:`CeleryAdapter`; they need
the broker and the store, not the services. Workers (``dwf worker``) run them. Tasks:

* ``dwf.run(execution_id)``: start a pending execution, or recover one whose owner died;
* ``dwf.resume(execution_id, approved, response, by, resumes_seen)``: answer a halt.

Delivery is at least once and the lease makes it safe: tasks are acknowledged late (a worker
that dies mid-run has its task delivered again), and a task for an execution that a live process
owns, or that is finished, does nothing (:func:`dwf.runners.jobs.perform`). A task whose store
call fails (the database is down) is retried with exponential backoff until the store is back.

Every worker process has one event loop (in a thread of its own) and one engine, shared by its
tasks, so connection pools and lease renewal outlive single tasks. Each also runs housekeeping
every ``recover_interval`` seconds (:meth:`Engine.tick`): it continues executions whose owner
died or whose lease expired, fires approval timeouts and fails executions past their deadline,
whether or not any task arrives. No beat process is needed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dwf.errors import ConfigurationError, StoreError
from dwf.runners._worker import HostSlot, WorkerSettings
from dwf.runners.jobs import Job, JobOutcome, perform

try:
    from celery import Celery, signals
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ConfigurationError(
        'the Celery queue needs the celery extra: pip install "dwf[celery]"', missing=exc.name
    ) from exc

if TYPE_CHECKING:
    from dwf.engine import Engine

__all__ = ["DEFAULT_QUEUE", "CeleryAdapter", "make_celery_app", "run_worker"]

logger = logging.getLogger("dwf")

DEFAULT_QUEUE = "dwf"
RUN_TASK = "dwf.run"
RESUME_TASK = "dwf.resume"
#: Retries of a task whose store call failed wait 0.5 s, 1 s, 2 s, ... up to this (plus jitter).
MAX_RETRY_DELAY = 30.0


def make_celery_app(
    broker: str,
    store_url: str | None,
    services_files: Sequence[str | os.PathLike[str]] = (),
    workflows_paths: Sequence[str | os.PathLike[str]] = (),
    *,
    queue: str = DEFAULT_QUEUE,
    lease_seconds: float = 30.0,
    recover_interval: float = 5.0,
    pending_after: float | None = None,
    extensions: bool = True,
    visibility_timeout: float = 300.0,
) -> Celery:
    """The Celery application of a dwf worker.

    Args:
        broker: The broker URL (``redis://host:6379/0``, ``amqp://...``).
        store_url: The store every worker and producer shares (``postgresql://...``); ``None``
            means ``$DWF_STORE`` or the default SQLite file.
        services_files: Python files whose classes and functions are services.
        workflows_paths: Workflow files or directories. Rarely needed: executions are pinned
            to the definition the store keeps (sub-workflows included).
        queue: The queue the tasks go to and the worker consumes.
        lease_seconds: How long a worker owns an execution without renewing (it renews every
            third of it); also how fast a cancel from another process is noticed.
        recover_interval: Seconds between two housekeeping rounds (recovery, timers, deadlines).
        pending_after: If set, housekeeping also starts pending executions older than this many
            seconds (a safety net for a job lost between the store and the broker).
        extensions: Load installed dwf extensions (step types), as ``dwf run`` does.
        visibility_timeout: Redis broker: seconds after which a task that was delivered but not
            acknowledged (its worker died) is delivered again. A task delivered twice is
            harmless; this only bounds how late a dead worker's queued jobs start.
    """
    settings = WorkerSettings(
        store_url=store_url,
        services_files=list(services_files),
        workflows_paths=list(workflows_paths),
        lease_seconds=lease_seconds,
        recover_interval=recover_interval,
        pending_after=pending_after,
        extensions=extensions,
    )
    app = _base_app(broker, queue, visibility_timeout)
    slot = HostSlot(settings)
    app.dwf_host_slot = slot  # for tests and embedding: slot.get().engine
    _register_tasks(app, slot, settings)
    _connect_signals(app, slot)
    return app


def run_worker(
    app: Celery,
    *,
    queue: str = DEFAULT_QUEUE,
    pool: str = "threads",
    concurrency: int = 8,
    loglevel: str = "INFO",
    name: str | None = None,
    extra_args: Sequence[str] = (),
) -> None:
    """Run a Celery worker for ``app`` in this process until it is stopped (SIGTERM, Ctrl-C).

    The default pool, ``threads``, runs ``concurrency`` tasks at once on the process's one event
    loop: dwf's work is waiting on services and the store. ``prefork`` gives every child
    process an engine of its own; ``solo`` runs one task at a time.
    """
    argv = [
        "worker",
        f"--loglevel={loglevel}",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        f"--queues={queue}",
        f"--hostname={name or f'dwf-{os.getpid()}@%h'}",
        # dwf uses neither remote revokes nor worker-to-worker sync; both slow restarts down.
        "--without-mingle",
        "--without-gossip",
        *extra_args,
    ]
    app.worker_main(argv)


class CeleryAdapter:
    """Queues jobs on a Celery broker for ``dwf worker`` processes.

    Args:
        broker: The broker URL. Give either this or ``app``.
        app: A Celery application to send with (your own, or :func:`make_celery_app`'s).
        queue: The queue ``dwf worker --queue`` consumes (default ``dwf``).
    """

    in_process = False

    def __init__(
        self, broker: str | None = None, *, app: Celery | None = None, queue: str = DEFAULT_QUEUE
    ) -> None:
        if (broker is None) == (app is None):
            raise ConfigurationError("CeleryAdapter needs a broker URL or a Celery app (one)")
        self.app: Celery = app if app is not None else _base_app(broker or "", queue, None)
        self.queue = queue
        self._own_app = app is None

    async def submit(self, engine: Engine, job: Job) -> None:
        """Publish the job (in a thread: publishing blocks) and return once the broker has it."""
        args: list[Any]
        if job.kind == "run":
            name, args = RUN_TASK, [job.execution_id]
        else:
            name = RESUME_TASK
            args = [job.execution_id, job.approved, job.response, job.by, job.resumes_seen]
        await asyncio.to_thread(self.app.send_task, name, args=args, queue=self.queue)

    async def aclose(self) -> None:
        """Release the broker connections of the app, if this adapter created it."""
        if self._own_app:
            await asyncio.to_thread(self.app.close)


# -- the Celery application ----------------------------------------------------------------------


def _base_app(broker: str, queue: str, visibility_timeout: float | None) -> Celery:
    app = Celery("dwf", broker=broker, set_as_current=False)
    transport: dict[str, Any] = {}
    if visibility_timeout is not None:
        # Redis: a task delivered to a worker that died goes back to the queue after this long
        # (kombu looks every unacked_restore_interval seconds). The look runs under a lock that
        # expires after unacked_mutex_expire: kombu's 300 s would stop every redelivery for five
        # minutes after a worker died holding it.
        transport = {
            "visibility_timeout": visibility_timeout,
            "unacked_restore_interval": max(1, min(10, int(visibility_timeout / 4))),
            "unacked_restore_throttle": 1,
            "unacked_mutex_expire": max(5, min(300, int(visibility_timeout))),
        }
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,  # results live in the dwf store
        task_default_queue=queue,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport,
        worker_hijack_root_logger=True,
    )
    return app


def _retry_delay(retries: int) -> float:
    return min(0.5 * 2.0**retries, MAX_RETRY_DELAY) * random.uniform(0.5, 1.0)


def _register_tasks(app: Celery, slot: HostSlot, settings: WorkerSettings) -> None:
    def execute(task: Any, job: Job) -> dict[str, Any]:
        host = slot.get()
        try:
            outcome: JobOutcome = host.call(perform(host.engine, job))
        except StoreError as exc:
            delay = _retry_delay(task.request.retries)
            logger.error(
                "dwf: %s of execution %s: the store failed: %s Retrying in %.1f s (retry %d).",
                job.kind, job.execution_id, exc.message, delay, task.request.retries + 1,
            )  # fmt: skip
            raise task.retry(countdown=delay) from exc
        if outcome.status == "retry":
            delay = min(_retry_delay(task.request.retries), settings.lease_seconds)
            logger.info("dwf: %s of %s: %s; again in %.1f s", job.kind, job.execution_id,
                        outcome.reason, delay)  # fmt: skip
            raise task.retry(countdown=delay)
        logger.info("dwf: %s of execution %s: %s", job.kind, job.execution_id, outcome)
        return {"status": outcome.status, "reason": outcome.reason}

    options: dict[str, Any] = {
        "bind": True,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "max_retries": None,  # a store outage is waited out, however long
        "ignore_result": True,
    }

    @app.task(name=RUN_TASK, **options)  # type: ignore[untyped-decorator]
    def run_task(self: Any, execution_id: str) -> dict[str, Any]:
        return execute(self, Job.run(execution_id))

    @app.task(name=RESUME_TASK, **options)  # type: ignore[untyped-decorator]
    def resume_task(
        self: Any,
        execution_id: str,
        approved: bool | None = None,
        response: Any = None,
        by: str | None = None,
        resumes_seen: int | None = None,
    ) -> dict[str, Any]:
        job = Job("resume", execution_id, approved, response, by, resumes_seen)
        return execute(self, job)

    _ = (run_task, resume_task)


def _connect_signals(app: Celery, slot: HostSlot) -> None:
    # Prefork: every child process gets its own engine and housekeeping; the parent none, so
    # nothing holding connections or threads is ever forked. Solo and threads: the one process.
    def child_started(**_: Any) -> None:
        slot.start()

    def worker_ready(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not app:
            return
        if type(getattr(sender, "pool", None)).__module__ != "celery.concurrency.prefork":
            slot.start()

    def stopping(**_: Any) -> None:
        slot.close()

    signals.worker_process_init.connect(child_started, weak=False)
    signals.worker_ready.connect(worker_ready, weak=False)
    signals.worker_process_shutdown.connect(stopping, weak=False)
    signals.worker_shutdown.connect(stopping, weak=False)
