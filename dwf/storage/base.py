"""The storage protocol every backend implements, and the records it stores.

An execution is one row of small fields (status, position, owner, lease, deadlines, ...) plus two
key/value maps that the engine updates *incrementally*:

* ``variables``: the workflow's user variables (``$name``), one entry per variable;
* ``state``: the engine's own bookkeeping (frame positions, loop counters, branch overlays).

A :class:`Checkpoint` carries only the entries that changed, so the cost of a step does not grow
with the size of the state. Everything in one checkpoint is written atomically, guarded by the
lease owner: a process that lost its lease can never commit.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "TERMINAL_STATUSES",
    "AuditEntry",
    "Checkpoint",
    "ExecutionRecord",
    "ExecutionSummary",
    "Status",
    "Store",
]


class Status(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    HALTED = "halted"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})


@dataclass
class ExecutionRecord:
    """One execution as stored. Times are Unix epoch seconds (float)."""

    id: str
    workflow_id: str
    definition_hash: str
    status: Status
    input: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    position: list[str] = field(default_factory=list)
    output: Any = None
    halt: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    parent_id: str | None = None
    parent_step: str | None = None
    owner: str | None = None
    lease_expires_at: float | None = None
    deadline: float | None = None
    wake_at: float | None = None
    cancel_requested: bool = False
    version: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass
class ExecutionSummary:
    """The small fields of an execution, for listings (no variables, no state, no output)."""

    id: str
    workflow_id: str
    status: Status
    parent_id: str | None
    owner: str | None
    lease_expires_at: float | None
    deadline: float | None
    wake_at: float | None
    cancel_requested: bool
    version: int
    created_at: float
    updated_at: float


@dataclass
class AuditEntry:
    """One line of an execution's timeline. ``seq`` is assigned by the store (1, 2, 3, ...)."""

    execution_id: str
    step_path: str
    step_id: str
    step_type: str
    action: str  # completed | halted | failed | retried | resumed | cancelled | timed_out | ...
    started_at: float
    finished_at: float
    attempt: int = 1
    output: Any = None
    error: dict[str, Any] | None = None
    seq: int = 0

    @property
    def duration_ms(self) -> float:
        return (self.finished_at - self.started_at) * 1000.0


@dataclass
class Checkpoint:
    """Everything one step changes, written atomically.

    ``owner`` must be the execution's current owner, otherwise the store raises
    :class:`dwf.errors.LeaseLost` and writes nothing. When ``status`` is not ``running`` the
    owner and lease are cleared (the execution is released). ``output``, ``halt`` and ``error``
    replace the stored values only when their ``set_*`` flag is true, so a step checkpoint does
    not rewrite a large output.
    """

    execution_id: str
    owner: str
    status: Status
    position: list[str]
    set_variables: Mapping[str, Any] = field(default_factory=dict)
    delete_variables: list[str] = field(default_factory=list)
    set_state: Mapping[str, Any] = field(default_factory=dict)
    delete_state: list[str] = field(default_factory=list)
    entries: list[AuditEntry] = field(default_factory=list)
    output: Any = None
    set_output: bool = False
    halt: dict[str, Any] | None = None
    set_halt: bool = False
    error: dict[str, Any] | None = None
    set_error: bool = False
    wake_at: float | None = None
    set_wake_at: bool = False
    lease_expires_at: float | None = None


@runtime_checkable
class Store(Protocol):
    """The async storage protocol. Every method is safe to call concurrently from one event loop.

    Values (input, variables, state, output, halt, error, entry output) are JSON-compatible
    (dict, list, str, int, float, bool, None) and come back equal to what was written.
    """

    url: str

    async def create(self, record: ExecutionRecord, definition: str) -> ExecutionRecord:
        """Insert a new execution (with its variables and state) and, if absent, its definition
        text under ``record.definition_hash``. Sets ``version=1``, ``created_at``, ``updated_at``.
        Raises :class:`dwf.errors.InvalidTransition` when the id already exists."""
        ...

    async def load(self, execution_id: str) -> ExecutionRecord | None:
        """The execution with all its variables and state, or ``None``."""
        ...

    async def load_definition(self, definition_hash: str) -> str | None:
        """The definition text stored under that hash, or ``None``."""
        ...

    async def checkpoint(self, checkpoint: Checkpoint) -> int:
        """Apply the checkpoint atomically; return the new version. Raises
        :class:`dwf.errors.LeaseLost` if the execution is missing or owned by someone else."""
        ...

    async def claim(
        self,
        execution_id: str,
        *,
        owner: str,
        lease_expires_at: float,
        expected_version: int,
    ) -> ExecutionRecord | None:
        """Compare-and-set: if the stored version equals ``expected_version``, set status
        ``running``, the owner and the lease, bump the version and return the full record;
        otherwise return ``None`` (someone else changed it first)."""
        ...

    async def renew(self, execution_id: str, *, owner: str, lease_expires_at: float) -> bool:
        """Extend the lease if ``owner`` still owns the running execution. Does not bump the
        version. Returns whether it did."""
        ...

    async def set_status(
        self,
        execution_id: str,
        *,
        expected_version: int,
        status: Status,
        error: dict[str, Any] | None = None,
        entry: AuditEntry | None = None,
    ) -> bool:
        """Compare-and-set the status of an execution that nobody runs (pending or halted), for
        example to cancel it; clears owner and lease, optionally appends an entry."""
        ...

    async def request_cancel(self, execution_id: str) -> bool:
        """Flag a running execution for cancellation at its next step boundary (does not bump
        the version). Returns False if the execution does not exist."""
        ...

    async def entries(self, execution_id: str) -> list[AuditEntry]:
        """The execution's audit entries in ``seq`` order; ``[]`` if none."""
        ...

    async def find(
        self,
        *,
        workflow_id: str | None = None,
        status: Status | None = None,
        parent_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[ExecutionSummary]:
        """Executions matching every given filter, newest first (``created_at`` then ``id``
        descending), paged by ``limit`` and ``offset`` (filters apply before paging)."""
        ...

    async def find_due(self, *, now: float, limit: int = 100) -> list[ExecutionSummary]:
        """Executions that need a worker: ``running`` with ``lease_expires_at <= now``, or
        ``halted``/``running``/``pending`` with ``wake_at <= now`` or ``deadline <= now``.
        Oldest first."""
        ...

    async def delete(self, execution_id: str) -> bool:
        """Delete the execution, its variables, state and entries. True if it existed."""
        ...

    async def close(self) -> None:
        """Release connections and threads. The store is unusable afterwards."""
        ...
