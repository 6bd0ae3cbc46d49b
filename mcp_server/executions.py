"""The executions an MCP server drives: started in the background, awaited a bounded time, watched.

A tool call must answer within the host's patience (Claude Desktop gives up after about 60 s), but
a workflow may run for longer or wait days for a person. So every run and resume is a background
task owned by :class:`Executions`, not by the request that started it: the request waits for the
task at most ``wait`` seconds, then answers with the execution id while the task goes on.

Events of an execution (and of its sub-workflows) go to a :class:`Channel`: a numbered replay
buffer plus live subscribers, which feed progress notifications and the SSE endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import dwf

if TYPE_CHECKING:
    from dwf import Engine, Event, ExecutionRecord, RunResult, WorkflowDefinition

__all__ = ["Channel", "Executions", "Subscription"]

logger = logging.getLogger("dwf.mcp")

#: Events a channel keeps for late subscribers (the SSE endpoint, ``Last-Event-ID``).
REPLAY_EVENTS = 500
#: Channels of finished executions kept for late subscribers.
KEEP_CHANNELS = 256
#: How often an execution that runs in another process is re-read from the store.
POLL_SECONDS = 0.25
_TERMINAL = frozenset({"completed", "failed", "cancelled"})

Item = tuple[int, "Event"]


class Subscription:
    """A subscriber's queue of ``(sequence, event)``; ``None`` marks the end of a run segment
    (the background task finished: the execution completed, halted, failed or was cancelled)."""

    def __init__(self, channel: Channel, backlog: list[Item]) -> None:
        self._channel = channel
        self._queue: asyncio.Queue[Item | None] = asyncio.Queue()
        for item in backlog:
            self._queue.put_nowait(item)

    def push(self, item: Item | None) -> None:
        self._queue.put_nowait(item)

    async def get(self, timeout: float) -> Item | TimeoutError | None:  # noqa: ASYNC109
        """The next item, or a :class:`TimeoutError` instance when none came in time."""
        if timeout <= 0 and self._queue.empty():
            return TimeoutError()
        try:
            return await asyncio.wait_for(self._queue.get(), max(timeout, 0))
        except TimeoutError as exc:
            return exc

    def pending(self) -> list[Item | None]:
        """What is queued now, without waiting."""
        items = []
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items

    def close(self) -> None:
        self._channel.subscribers.discard(self)


class Channel:
    """The events of one top-level execution, numbered from 1."""

    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        self.seq = 0
        self.buffer: deque[Item] = deque(maxlen=REPLAY_EVENTS)
        self.subscribers: set[Subscription] = set()

    def publish(self, event: Event) -> None:
        self.seq += 1
        item = (self.seq, event)
        self.buffer.append(item)
        for subscriber in list(self.subscribers):
            subscriber.push(item)

    def end_segment(self) -> None:
        for subscriber in list(self.subscribers):
            subscriber.push(None)

    def subscribe(self, *, after: int | None = None) -> Subscription:
        """A new subscriber; with ``after``, buffered events numbered above it come first."""
        backlog = [item for item in self.buffer if item[0] > after] if after is not None else []
        subscription = Subscription(self, backlog)
        self.subscribers.add(subscription)
        return subscription


class Executions:
    """Runs, resumes, cancels and watches executions of the served workflows on one engine.

    Args:
        engine: the engine (its store is where executions live).
        workflows: the served workflows by id; other executions in the store are invisible.
    """

    def __init__(self, engine: Engine, workflows: Mapping[str, WorkflowDefinition]) -> None:
        self.engine = engine
        self.workflows = dict(workflows)
        self._tasks: dict[str, asyncio.Task[RunResult]] = {}
        self._channels: OrderedDict[str, Channel] = OrderedDict()
        self._roots: dict[str, str] = {}
        engine.subscribe(self._on_event)

    # -------------------------------------------------------------------------- events

    def _on_event(self, event: Event) -> None:
        execution_id = event.execution_id
        parent = event.data.get("parent_id") if event.type == "workflow.started" else None
        if isinstance(parent, str):
            self._roots[execution_id] = self._roots.get(parent, parent)
        root = self._roots.get(execution_id, execution_id)
        channel = self._channels.get(root)
        if channel is not None:
            channel.publish(event)

    def channel(self, execution_id: str) -> Channel:
        channel = self._channels.get(execution_id)
        if channel is None:
            channel = self._channels[execution_id] = Channel(execution_id)
            self._evict()
        else:
            self._channels.move_to_end(execution_id)
        return channel

    def _evict(self) -> None:
        idle = [
            cid
            for cid, ch in self._channels.items()
            if not ch.subscribers and cid not in self._tasks
        ]
        for cid in idle[: max(0, len(self._channels) - KEEP_CHANNELS)]:
            del self._channels[cid]
            for child in [c for c, root in self._roots.items() if root == cid]:
                del self._roots[child]

    def subscribe(self, execution_id: str, *, after: int | None = None) -> Subscription:
        return self.channel(execution_id).subscribe(after=after)

    @contextlib.contextmanager
    def watch(self, execution_id: str) -> Iterator[Subscription]:
        """Subscribe for the duration of a block (subscribe *before* starting or resuming, so no
        event is missed)."""
        subscription = self.subscribe(execution_id)
        try:
            yield subscription
        finally:
            subscription.close()

    # -------------------------------------------------------------------------- lookups

    def workflow(self, workflow_id: str) -> WorkflowDefinition:
        try:
            return self.workflows[workflow_id]
        except KeyError:
            raise dwf.ConfigurationError(
                f"workflow '{workflow_id}' is not served here; served: "
                f"{', '.join(sorted(self.workflows)) or 'none'}"
            ) from None

    async def record(self, execution_id: str) -> ExecutionRecord:
        """The stored execution, if it belongs to a served workflow (else ExecutionNotFound)."""
        record = await self.engine.store.load(execution_id)
        if record is None or record.parent_id is not None:
            raise dwf.ExecutionNotFound(
                f"no execution '{execution_id}'; list_executions shows recent ones",
                execution_id=execution_id,
            )
        if record.workflow_id not in self.workflows:
            raise dwf.ExecutionNotFound(
                f"execution '{execution_id}' belongs to workflow '{record.workflow_id}', which "
                "this server does not serve",
                execution_id=execution_id,
            )
        return record

    async def snapshot(self, execution_id: str) -> RunResult:
        return dwf.RunResult.from_record(await self.record(execution_id))

    def running_here(self, execution_id: str) -> bool:
        return execution_id in self._tasks

    # -------------------------------------------------------------------------- commands

    def start(
        self,
        workflow: WorkflowDefinition,
        arguments: Mapping[str, Any],
        *,
        execution_id: str | None = None,
    ) -> str:
        """Start a run in the background; returns its execution id at once."""
        execution_id = execution_id or new_execution_id()
        self.channel(execution_id)
        self._spawn(execution_id, self.engine.run(workflow, arguments, execution_id=execution_id))
        return execution_id

    async def resume(
        self,
        execution_id: str,
        *,
        approved: bool | None = None,
        response: Any = None,
        by: str | None = None,
    ) -> None:
        """Resume a halted execution in the background; wrong states are reported now."""
        record = await self.record(execution_id)
        if record.status != dwf.Status.HALTED:
            raise dwf.InvalidTransition(
                f"execution {execution_id} is {record.status}; only halted executions can be "
                "resumed",
                execution_id=execution_id,
            )
        self.channel(execution_id)
        coro = self.engine.resume(execution_id, approved=approved, response=response, by=by)
        self._spawn(execution_id, coro)

    async def recover(self) -> int:
        """Continue, in the background, executions of the served workflows whose process died
        (a server the host restarted) and halts whose timers are due. Executions that a live
        process still owns are left alone. Returns how many were taken up."""
        store = self.engine.store
        running = dwf.Status.RUNNING
        found = []
        for workflow_id in sorted(self.workflows):
            found += await store.find(workflow_id=workflow_id, status=running, limit=1000)
        found += await store.find_due(now=self.engine.clock(), limit=1000)
        started = 0
        for summary in found:
            if summary.parent_id is not None or summary.workflow_id not in self.workflows:
                continue
            if summary.id in self._tasks:
                continue
            self.channel(summary.id)
            self._spawn(summary.id, self._recover_one(summary.id))
            started += 1
        return started

    async def _recover_one(self, execution_id: str) -> RunResult:
        try:
            results = await self.engine.recover(execution_id)
        except dwf.InvalidTransition:  # owned by a live process, or nothing to do after all
            return await self.snapshot(execution_id)
        if results:
            logger.info("recovered execution %s: %s", execution_id, results[0].status)
            return results[0]
        return await self.snapshot(execution_id)

    async def cancel(self, execution_id: str, *, settle: float = 2.0) -> RunResult:
        """Cancel now (halted, pending) or at the next step (running); a run of this process is
        given ``settle`` seconds to reach that step."""
        await self.record(execution_id)
        result = await self.engine.cancel(execution_id)
        task = self._tasks.get(execution_id)
        if task is not None:
            await asyncio.wait({task}, timeout=settle)
            if task.done() and not task.cancelled() and task.exception() is None:
                return task.result()
        return result

    async def list(
        self, *, workflow_id: str | None = None, status: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        from datetime import UTC, datetime

        wanted = dwf.Status(status) if status else None
        ids = [workflow_id] if workflow_id else sorted(self.workflows)
        rows: list[Any] = []  # store summaries
        for wid in ids:
            found = await self.engine.store.find(workflow_id=wid, status=wanted, limit=limit * 2)
            rows.extend(r for r in found if r.parent_id is None)
        rows.sort(key=lambda r: (r.created_at, r.id), reverse=True)

        def iso(ts: float) -> str:
            return datetime.fromtimestamp(ts, UTC).isoformat()

        return [
            {
                "execution_id": r.id,
                "workflow_id": r.workflow_id,
                "status": str(r.status),
                "created_at": iso(r.created_at),
                "updated_at": iso(r.updated_at),
            }
            for r in rows[:limit]
        ]

    # -------------------------------------------------------------------------- waiting

    async def follow(
        self,
        execution_id: str,
        timeout: float,  # noqa: ASYNC109 (a bound, not a cancellation policy)
        *,
        subscription: Subscription | None = None,
        on_event: Callable[[Event], Awaitable[None]] | None = None,
    ) -> RunResult:
        """Wait at most ``timeout`` seconds for the execution to stop running (complete, halt,
        fail, be cancelled) and return how it stands; ``on_event`` sees its events meanwhile.

        Errors that a run raises before it creates anything (invalid input) are raised here.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        task = self._tasks.get(execution_id)
        if task is None:
            return await self._poll(execution_id, deadline)
        while not task.done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            if subscription is None:
                await asyncio.wait({task}, timeout=remaining)
                continue
            item = await subscription.get(remaining)
            if isinstance(item, tuple) and on_event is not None:
                await on_event(item[1])
        if subscription is not None and on_event is not None:
            for item in subscription.pending():
                if item is not None:
                    await on_event(item[1])
        if not task.done():
            return await self.snapshot(execution_id)
        if task.cancelled():
            return await self.snapshot(execution_id)
        return task.result()

    async def _poll(self, execution_id: str, deadline: float) -> RunResult:
        loop = asyncio.get_running_loop()
        while True:
            result = await self.snapshot(execution_id)
            remaining = deadline - loop.time()
            if result.status not in ("running", "pending") or remaining <= 0:
                return result
            if execution_id in self._tasks:  # resumed meanwhile by this process
                return await self.follow(execution_id, remaining)
            await asyncio.sleep(min(POLL_SECONDS, remaining))

    # -------------------------------------------------------------------------- tasks

    def _spawn(self, execution_id: str, coro: Coroutine[Any, Any, RunResult]) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"dwf-mcp:{execution_id}")
        self._tasks[execution_id] = task
        task.add_done_callback(lambda t: self._finished(execution_id, t))

    def _finished(self, execution_id: str, task: asyncio.Task[RunResult]) -> None:
        if self._tasks.get(execution_id) is task:
            del self._tasks[execution_id]
        if not task.cancelled():
            exc = task.exception()  # retrieved here, so asyncio never reports it as lost
            if exc is not None and not isinstance(exc, dwf.DwfError):
                logger.error(
                    "execution %s raised %s", execution_id, type(exc).__name__, exc_info=exc
                )
        channel = self._channels.get(execution_id)
        if channel is not None:
            channel.end_segment()

    async def aclose(self, grace: float = 2.0) -> None:
        """Give running tasks ``grace`` seconds, then cancel them (they stay ``running`` in the
        store, from their last checkpoint, for ``dwf recover``)."""
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        left = [t for t in tasks if not t.done()]
        for task in left:
            task.cancel()
        if left:
            await asyncio.gather(*left, return_exceptions=True)
            logger.warning(
                "%d execution(s) were still running at shutdown; they continue from their last "
                "step with `dwf recover`",
                len(left),
            )


def new_execution_id() -> str:
    return uuid.uuid4().hex


def is_terminal(status: str) -> bool:
    return status in _TERMINAL
