"""The Sync runner: run, resume, and run until complete with a callback that answers halts."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dwf.errors import ExecutionError

if TYPE_CHECKING:
    from dwf.dsl.model import WorkflowDefinition
    from dwf.engine import Engine, RunResult

__all__ = ["HaltAnswer", "SyncRunner"]


@dataclass(frozen=True)
class HaltAnswer:
    """What a halt callback returns: an approval decision and/or a response."""

    approved: bool | None = None
    response: Any = None


HaltCallback = Callable[["RunResult"], "HaltAnswer | Any | Awaitable[HaltAnswer | Any]"]


class SyncRunner:
    """Runs one workflow on an engine. Every method has an async form and a ``*_sync`` form."""

    def __init__(self, engine: Engine, workflow: WorkflowDefinition) -> None:
        self.engine = engine
        self.workflow = workflow

    async def run(
        self, input: Mapping[str, Any] | None = None, *, execution_id: str | None = None
    ) -> RunResult:
        return await self.engine.run(self.workflow, input, execution_id=execution_id)

    async def resume(
        self, execution_id: str, *, approved: bool | None = None, response: Any = None
    ) -> RunResult:
        return await self.engine.resume(execution_id, approved=approved, response=response)

    async def run_until_complete(
        self,
        input: Mapping[str, Any] | None = None,
        on_halt: HaltCallback | None = None,
        *,
        execution_id: str | None = None,
        max_halts: int = 100,
    ) -> RunResult:
        """Run, and answer every halt with ``on_halt(result)`` until the run ends.

        The callback returns a :class:`HaltAnswer` (or, for plain halts, any value, used as the
        response; a bool answers an approval). Without a callback the first halt is returned.
        """
        result = await self.run(input, execution_id=execution_id)
        halts = 0
        while result.halted and on_halt is not None:
            halts += 1
            if halts > max_halts:
                raise ExecutionError(
                    f"execution {result.execution_id} halted more than {max_halts} times in "
                    "run_until_complete; the callback's answers do not let it finish"
                )
            answer = on_halt(result)
            if inspect.isawaitable(answer):
                answer = await answer
            if isinstance(answer, HaltAnswer):
                approved, response = answer.approved, answer.response
            elif (
                isinstance(answer, bool)
                and (result.halt or {}).get("data", {}).get("type") == "approval"
            ):
                approved, response = answer, None
            else:
                approved, response = None, answer
            result = await self.resume(result.execution_id, approved=approved, response=response)
        return result

    def run_sync(self, input: Mapping[str, Any] | None = None, **kw: Any) -> RunResult:
        from dwf.engine import _sync

        return _sync(self.run(input, **kw), "run")

    def resume_sync(self, execution_id: str, **kw: Any) -> RunResult:
        from dwf.engine import _sync

        return _sync(self.resume(execution_id, **kw), "resume")

    def run_until_complete_sync(
        self, input: Mapping[str, Any] | None = None, on_halt: HaltCallback | None = None, **kw: Any
    ) -> RunResult:
        from dwf.engine import _sync

        return _sync(self.run_until_complete(input, on_halt, **kw), "run_until_complete")
