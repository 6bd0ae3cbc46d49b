"""The Stream runner: lifecycle events as Python callbacks and as Server-Sent Events."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dwf.dsl.model import WorkflowDefinition
    from dwf.engine import Engine, Event, RunResult

__all__ = ["EVENT_TYPES", "StreamRunner", "sse_stream"]

logger = logging.getLogger("dwf")

EVENT_TYPES = (
    "workflow.started",
    "workflow.resumed",
    "workflow.halted",
    "workflow.completed",
    "workflow.failed",
    "workflow.cancelled",
    "workflow.recovered",
    "step.started",
    "step.completed",
    "step.failed",
    "step.halted",
)


_FINAL_EVENTS = frozenset({"workflow.completed", "workflow.failed", "workflow.cancelled"})


def _follows(executions: set[str], event: Event) -> bool:
    """Whether ``event`` belongs to one of ``executions`` or to a child workflow they started
    (a child is adopted when its ``workflow.started`` names its parent)."""
    if event.execution_id in executions:
        return True
    if event.type == "workflow.started" and event.data.get("parent_id") in executions:
        executions.add(event.execution_id)
        return True
    return False


class StreamRunner:
    """Runs a workflow and delivers its events to subscribers.

    ``subscribe(handler, events=None)`` registers a callback (optionally for some event types
    only, exact names or prefixes like ``"step."``); it returns the runner for chaining. A
    subscriber that raises is logged and never breaks the run. Subscribers see the executions
    this runner runs or resumes (and their child workflows), not other runs on the same engine.
    """

    def __init__(self, engine: Engine, workflow: WorkflowDefinition) -> None:
        self.engine = engine
        self.workflow = workflow
        self._subscribers: list[tuple[tuple[str, ...] | None, Callable[[Event], Any]]] = []
        self._executions: set[str] = set()
        engine.subscribe(self._dispatch)

    def subscribe(
        self, handler: Callable[[Event], Any], events: Iterable[str] | None = None
    ) -> StreamRunner:
        self._subscribers.append((tuple(events) if events is not None else None, handler))
        return self

    def _dispatch(self, event: Event) -> None:
        if not _follows(self._executions, event):
            return
        for events, handler in list(self._subscribers):
            if events is None or any(
                event.type == e or (e.endswith(".") and event.type.startswith(e)) for e in events
            ):
                try:
                    handler(event)
                except Exception:  # one broken subscriber must not starve the others
                    logger.exception("stream subscriber %r raised on %s", handler, event.type)
        if event.type in _FINAL_EVENTS:
            self._executions.discard(event.execution_id)

    async def run(
        self, input: Mapping[str, Any] | None = None, *, execution_id: str | None = None
    ) -> RunResult:
        # The id is chosen here so that the very first event is recognised as this runner's.
        execution_id = execution_id or uuid.uuid4().hex
        self._executions.add(execution_id)
        return await self.engine.run(self.workflow, input, execution_id=execution_id)

    async def resume(
        self, execution_id: str, *, approved: bool | None = None, response: Any = None
    ) -> RunResult:
        self._executions.add(execution_id)
        return await self.engine.resume(execution_id, approved=approved, response=response)

    async def events(self, input: Mapping[str, Any] | None = None) -> AsyncIterator[Event]:
        """Run the workflow and yield the events of that run as they happen."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        execution_id = uuid.uuid4().hex
        mine = {execution_id}

        def collect(event: Event) -> None:
            if _follows(mine, event):
                queue.put_nowait(event)

        subscription: tuple[tuple[str, ...] | None, Callable[[Event], Any]] = (None, collect)
        self._subscribers.append(subscription)

        async def drive() -> None:
            try:
                await self.run(input, execution_id=execution_id)
            finally:
                queue.put_nowait(None)

        task = asyncio.ensure_future(drive())
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            await task
            self._subscribers.remove(subscription)


async def sse_stream(events: AsyncIterator[Event]) -> AsyncIterator[str]:
    """Encode events as Server-Sent Events messages (``event: <type>\\ndata: <json>\\n\\n``)."""
    async for event in events:
        yield event.to_sse()
