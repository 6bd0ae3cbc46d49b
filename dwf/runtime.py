"""What a running step sees: the :class:`StepContext` protocol, resume input and frame results.

Step types (core and extensions) only talk to the engine through this interface.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from dwf.dsl.model import StepDef, WorkflowDefinition
    from dwf.extensions import Halt

__all__ = ["BranchResult", "FrameResult", "ResumeInput", "StepContext", "SubWorkflowResult"]


@dataclass(frozen=True)
class ResumeInput:
    """What a person (or a timer) answered to a halt."""

    approved: bool | None = None
    response: Any = None
    timed_out: bool = False
    by: str | None = None


@dataclass
class FrameResult:
    """How a nested sequence of steps ended: completed with the last step's output, or halted
    (``halt`` is then a propagated halt the calling step returns as its own outcome)."""

    output: Any = None
    halt: Halt | None = None
    next_override: str | None = None


@dataclass
class BranchResult:
    """One parallel branch: ``status`` is completed, failed, halted or cancelled."""

    branch_id: str
    status: str
    output: Any = None
    error: dict[str, Any] | None = None
    halt: Halt | None = None


@dataclass
class SubWorkflowResult:
    execution_id: str
    status: str
    output: Any = None
    halt: Halt | None = None
    error: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class StepContext(Protocol):
    """The engine's services for one step execution.

    Writes (:meth:`set`, :meth:`delete`, :meth:`state_set`) are buffered and committed
    atomically with the step's checkpoint; if the step raises, they are discarded.
    """

    @property
    def execution_id(self) -> str: ...
    @property
    def step_path(self) -> str:
        """Where this step runs, e.g. ``charge`` or ``process[2]/charge``."""
        ...

    @property
    def idempotency_key(self) -> str:
        """Stable across retries, resumes and recoveries: ``<execution id>:<step path>``."""
        ...

    @property
    def workflow(self) -> WorkflowDefinition: ...
    @property
    def input(self) -> Mapping[str, Any]: ...
    @property
    def resume(self) -> ResumeInput | None:
        """The resume input when this step is re-entered after its own halt, else ``None``."""
        ...

    @property
    def attempt(self) -> int: ...

    def now(self) -> float:
        """The engine clock, epoch seconds."""
        ...

    def resolve(self, value: Any) -> Any:
        """Resolve ``$references`` in a value against the current variables."""
        ...

    def lookup(self, path: str) -> Any: ...

    def condition(self, field: str, op: str, value: Any) -> bool: ...

    def get(self, name: str) -> Any: ...

    def has(self, name: str) -> bool: ...

    def set(self, name: str, value: Any) -> None: ...

    def delete(self, name: str) -> None: ...

    @property
    def variables(self) -> Mapping[str, Any]:
        """A read-only view of the variables as this step sees them."""
        ...

    def state_get(self, key: str, default: Any = None) -> Any:
        """Durable bookkeeping private to this step (e.g. a loop's iteration counter)."""
        ...

    def state_set(self, key: str, value: Any) -> None: ...

    def state_delete(self, key: str) -> None: ...

    async def save(self) -> None:
        """Commit the buffered writes now, in their own checkpoint (used between iterations)."""
        ...

    def emit(self, event_type: str, **data: Any) -> None: ...

    async def call_service(
        self, service: str, method: str, payload: Any, *, idempotency_key: str | None = None
    ) -> Any:
        """Call a registered service (see docs/services.md); ``idempotency_key`` defaults to
        the step's own key (tools called by an agent pass a key per tool call)."""
        ...

    async def run_sequence(self, steps: Sequence[StepDef], *, frame: str) -> FrameResult:
        """Run nested steps as a small graph (from the first, following ``next``) in this
        step's scope; ``frame`` names the iteration (``"0"``, ``"1"``, ...)."""
        ...

    async def run_branches(
        self, branches: Sequence[StepDef], *, required: int, fail_fast: bool
    ) -> list[BranchResult]:
        """Run each step concurrently on its own copy of the variables; stop waiting once
        ``required`` have completed (cancelling the rest). Completed branches' writes are merged
        in branch order."""
        ...

    async def run_workflow(self, workflow_id: str, payload: Mapping[str, Any]) -> SubWorkflowResult:
        """Run (or continue, or resume) the child execution of this step."""
        ...
