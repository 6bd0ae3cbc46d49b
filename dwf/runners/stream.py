"""The Stream runner: lifecycle events as Python callbacks and as Server-Sent Events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dwf.dsl.model import WorkflowDefinition
    from dwf.engine import Engine, Event, RunResult

__all__ = ["EVENT_TYPES", "StreamRunner", "sse_stream"]

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


class StreamRunner:
    """Runs a workflow and delivers its events to subscribers.

    ``subscribe(handler, events=None)`` registers a callback (optionally for some event types
    only, exact names or prefixes like ``"step."``); it returns the runner for chaining. A
    subscriber that raises is logged and never breaks the run.
    """

    def __init__(self, engine: Engine, workflow: WorkflowDefinition) -> None:
        self.engine = engine
        self.workflow = workflow
        self._subscribers: list[tuple[tuple[str, ...] | None, Callable[[Event], Any]]] = []
        engine.subscribe(self._dispatch)

    def subscribe(
        self, handler: Callable[[Event], Any], events: Iterable[str] | None = None
    ) -> StreamRunner:
        self._subscribers.append((tuple(events) if events is not None else None, handler))
        return self

    def _dispatch(self, event: Event) -> None:
        for events, handler in self._subscribers:
            if events is None or any(
                event.type == e or (e.endswith(".") and event.type.startswith(e)) for e in events
            ):
                handler(event)

    async def run(
        self, input: Mapping[str, Any] | None = None, *, execution_id: str | None = None
    ) -> RunResult:
        return await self.engine.run(self.workflow, input, execution_id=execution_id)

    async def resume(
        self, execution_id: str, *, approved: bool | None = None, response: Any = None
    ) -> RunResult:
        return await self.engine.resume(execution_id, approved=approved, response=response)

    async def events(self, input: Mapping[str, Any] | None = None) -> AsyncIterator[Event]:
        """Run the workflow and yield its events as they happen."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.subscribe(queue.put_nowait)

        async def drive() -> None:
            try:
                await self.run(input)
            finally:
                queue.put_nowait(None)

        task = asyncio.ensure_future(drive())
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            await task


async def sse_stream(events: AsyncIterator[Event]) -> AsyncIterator[str]:
    """Encode events as Server-Sent Events messages (``event: <type>\\ndata: <json>\\n\\n``)."""
    async for event in events:
        yield event.to_sse()
