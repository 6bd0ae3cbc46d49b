"""What a worker does with a queued job, whatever the queue (inline, Celery, or your own).

A :class:`Job` is small and JSON-safe: the execution id, and for a resume the answer plus a
token. Performing a job is idempotent, because queues deliver at least once (a worker that dies
before acknowledging has its job delivered again):

* ``run`` starts a ``pending`` execution; an execution whose owner died is recovered from its
  last checkpoint; one that a live process owns (its lease is held), or that has finished, is
  left alone.
* ``resume`` answers the halt it was queued for, and only that one. The token is the number of
  resumes (and fired timeouts) the execution had committed when the resume was queued: if that
  number changed, the halt was answered already (or timed out) and the job is skipped. A resume
  that died before its first checkpoint committed nothing, so a redelivered job still applies.

Store errors (the database is down) are raised: the adapter retries the job with backoff.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from dwf.errors import ExecutionNotFound, InvalidTransition
from dwf.storage.base import TERMINAL_STATUSES, Status

if TYPE_CHECKING:
    from dwf.engine import Engine, RunResult

__all__ = ["Job", "JobOutcome", "perform", "resumes_committed"]

logger = logging.getLogger("dwf")

#: How often a resume job re-reads an execution that keeps changing under it before it asks
#: the queue to try again later.
_RESUME_ATTEMPTS = 3


@dataclass(frozen=True)
class Job:
    """One unit of queued work. Every field is JSON-safe; ``response`` is the person's answer
    (it travels through the broker: never put secrets in it)."""

    kind: Literal["run", "resume"]
    execution_id: str
    approved: bool | None = None
    response: Any = None
    by: str | None = None
    #: For a resume: :func:`resumes_committed` when it was queued (``None``: do not check).
    resumes_seen: int | None = None

    @classmethod
    def run(cls, execution_id: str) -> Job:
        return cls("run", execution_id)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class JobOutcome:
    """What performing a job did: ``done`` (the engine ran; ``result`` says how it ended),
    ``skipped`` (nothing to do: finished, owned by a live process, already answered) or
    ``retry`` (not now: try again later)."""

    status: Literal["done", "skipped", "retry"]
    reason: str = ""
    result: RunResult | None = None

    def __str__(self) -> str:
        if self.result is not None:
            return f"{self.status}: {self.result.status}"
        return f"{self.status}: {self.reason}"


async def perform(engine: Engine, job: Job) -> JobOutcome:
    """Do what ``job`` asks, at most once per execution step (see the module docstring).

    Raises:
        StoreError: The store failed; nothing is lost, retry the job later.
    """
    try:
        if job.kind == "run":
            return await _run(engine, job.execution_id)
        return await _resume(engine, job)
    except ExecutionNotFound:
        return JobOutcome("skipped", f"execution {job.execution_id} does not exist (deleted?)")


async def resumes_committed(engine: Engine, execution_id: str) -> int:
    """How many resumes and fired timeouts the execution's timeline holds (a resume's entry is
    committed with the first checkpoint after it, so an interrupted resume is not counted)."""
    entries = await engine.entries(execution_id)
    return sum(1 for e in entries if e.action in ("resumed", "timed_out"))


async def _run(engine: Engine, execution_id: str) -> JobOutcome:
    record = await engine.get(execution_id)
    if record.status == Status.PENDING:
        try:
            return JobOutcome("done", result=await engine.continue_(execution_id))
        except InvalidTransition:
            record = await engine.get(execution_id)  # started or cancelled by someone else
    if record.status in TERMINAL_STATUSES:
        return JobOutcome("skipped", f"execution {execution_id} is {record.status}")
    if record.parent_id is not None:
        return JobOutcome("skipped", f"execution {execution_id} runs with its parent")
    try:
        (result,) = await engine.recover(execution_id)
    except InvalidTransition as exc:  # a live owner runs it, or a halt waits for a person
        return JobOutcome("skipped", exc.message)
    return JobOutcome("done", result=result)


async def _resume(engine: Engine, job: Job) -> JobOutcome:
    execution_id = job.execution_id
    for _ in range(_RESUME_ATTEMPTS):
        record = await engine.get(execution_id)
        if record.status == Status.RUNNING:
            try:
                # Its owner died, perhaps while applying this very resume: continue it from the
                # last checkpoint (it halts again where it stood), then look again.
                await engine.recover(execution_id)
            except InvalidTransition:
                return JobOutcome("retry", f"execution {execution_id} is running elsewhere")
            continue
        if record.status != Status.HALTED:
            return JobOutcome("skipped", f"execution {execution_id} is {record.status}")
        if job.resumes_seen is not None:
            seen = await resumes_committed(engine, execution_id)
            if seen != job.resumes_seen:
                return JobOutcome(
                    "skipped",
                    f"the halt of execution {execution_id} this resume answered was answered "
                    "already (or timed out)",
                )
        try:
            result = await engine.resume(
                execution_id,
                approved=job.approved,
                response=job.response,
                by=job.by,
                expected_version=record.version,
            )
        except InvalidTransition:
            continue  # changed between the read and the claim: look again
        return JobOutcome("done", result=result)
    return JobOutcome("retry", f"execution {execution_id} keeps changing")
