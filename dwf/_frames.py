"""The durable step loop: frames, the step context, retries, halts and checkpoints.

A *frame* is a sequence of steps run as a graph: the workflow itself, one loop iteration, or one
parallel branch. Each frame keeps its position in the execution's state under ``<addr>|pos``
(the step about to run), so a halt or a crash at any depth resumes in that frame, at that step.
Every completed step commits one checkpoint: its variable writes, the frame's next position and
its audit entry, atomically.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dwf import expr
from dwf._scope import DELETED, Dirty, OverlayScope, RootScope, Scope, StepBuffer
from dwf.errors import (
    DwfError,
    ExecutionError,
    LeaseLost,
    NonRetryableError,
    RegistryError,
    StepTimeout,
    StoreError,
    WorkflowTimeout,
)
from dwf.extensions import DEFAULT_NEXT, FINISHED, Halt, Outcome
from dwf.runtime import BranchResult, FrameResult, ResumeInput, SubWorkflowResult
from dwf.storage.base import AuditEntry, Checkpoint, ExecutionRecord, Status

if TYPE_CHECKING:
    from dwf.dsl.model import StepDef, WorkflowDefinition
    from dwf.engine import Engine

logger = logging.getLogger("dwf")

__all__ = ["Frame", "PropagatedHalt", "Run", "StepFailure", "run_frame"]


@dataclass
class PropagatedHalt(Halt):
    """A halt that happened deeper down (inside a loop, a branch or a child workflow); the step
    that returns it will be re-entered on resume."""

    path: str = ""


class StepFailure(Exception):
    """A step failed and nothing handled it; carries the structured error up the frames."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", "step failed"))
        self.error = error


class Cancelled(Exception):
    """The execution was cancelled while running."""


def to_json_safe(value: Any, where: str) -> Any:
    """Make a service result storable: tuples and sets become lists, datetimes ISO strings,
    pydantic models and dataclasses dicts. Anything else non-JSON is a clear error."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise NonRetryableError(f"{where} returned {value!r}, which cannot be stored as JSON")
    if isinstance(value, Mapping):
        return {str(k): to_json_safe(v, where) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_safe(v, where) for v in value]
    if isinstance(value, set | frozenset):
        return [to_json_safe(v, where) for v in sorted(value, key=repr)]
    if isinstance(value, datetime):
        return value.isoformat()
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return to_json_safe(dump(mode="json"), where)
    import dataclasses
    import decimal

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json_safe(dataclasses.asdict(value), where)
    if isinstance(value, decimal.Decimal):
        return float(value)
    # Not retryable: the service did its work; running it again would repeat the side effect.
    raise NonRetryableError(
        f"{where} returned a {type(value).__name__}, which cannot be stored; return JSON-like "
        "data (dict, list, str, int, float, bool, None)"
    )


@dataclass
class Frame:
    addr: str
    prefix: str
    steps: dict[str, StepDef]
    first: str | None
    scope: Scope
    #: In nested bodies a step without ``next`` continues with the following step of the list.
    fallthrough: dict[str, str] = field(default_factory=dict)

    def next_of(self, step: StepDef) -> str | None:
        return step.next if step.next is not None else self.fallthrough.get(step.id)


@dataclass
class Run:
    """One execution being driven by this process."""

    engine: Engine
    record: ExecutionRecord
    definition: WorkflowDefinition
    owner: str
    resume: ResumeInput | None = None
    resume_path: str | None = None
    dirty: Dirty = field(default_factory=Dirty)
    pending_entries: list[AuditEntry] = field(default_factory=list)
    history: list[dict[str, Any]] | None = None
    catalog: dict[str, WorkflowDefinition] = field(default_factory=dict)
    #: The event of the root frame's last step, completed or halted but committed with the
    #: execution's completion or halt, to emit after that commit: (type, step, path, data).
    last_step: tuple[str, StepDef, str, dict[str, Any]] | None = None
    root: RootScope = field(init=False)

    def __post_init__(self) -> None:
        self.root = RootScope(self.record.variables, self.dirty)

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def state(self) -> dict[str, Any]:
        return self.record.state

    def set_state(self, key: str, value: Any) -> None:
        self.record.state[key] = value
        self.dirty.state[key] = value

    def delete_state(self, key: str) -> None:
        if key in self.record.state:
            del self.record.state[key]
            self.dirty.state[key] = DELETED

    def delete_state_under(self, path: str) -> None:
        """Forget all bookkeeping of a finished step (and its nested frames)."""
        state = self.record.state
        if len(state) <= 1 and not any(k.startswith(path) for k in state):
            return  # the common case: only the frame position exists
        prefixes = (f"{path}|", f"{path}[", f"{path}/")
        for key in [k for k in state if k.startswith(prefixes)]:
            self.delete_state(key)

    def now(self) -> float:
        return self.engine.clock()

    def entry(self, step: StepDef, path: str, action: str, started: float, **kw: Any) -> AuditEntry:
        entry = AuditEntry(
            execution_id=self.id,
            step_path=path,
            step_id=step.id,
            step_type=step.type,
            action=action,
            started_at=started,
            finished_at=self.now(),
            **kw,
        )
        if self.history is not None:
            self.history.append({"step": path, "type": step.type, "action": action})
        return entry

    async def commit(
        self,
        position: str,
        entries: Sequence[AuditEntry] = (),
        *,
        status: Status = Status.RUNNING,
        **fields: Any,
    ) -> None:
        set_v, del_v, set_s, del_s = self.dirty.take()
        all_entries = [*self.pending_entries, *entries]
        self.pending_entries = []
        lease = self._lease_to_renew()
        checkpoint = Checkpoint(
            execution_id=self.id,
            owner=self.owner,
            status=status,
            position=[position] if position else [],
            set_variables=set_v,
            delete_variables=del_v,
            set_state=set_s,
            delete_state=del_s,
            entries=all_entries,
            lease_expires_at=lease,
            **fields,
        )
        self.record.version = await self.engine.store.checkpoint(checkpoint)
        self.record.status = status
        if status != Status.RUNNING:
            self.record.lease_expires_at = None
        elif lease is not None:
            self.record.lease_expires_at = lease

    def _lease_to_renew(self) -> float | None:
        """The new lease a checkpoint should write, or ``None`` to keep the stored one.

        The engine's renewer extends the lease every third of its duration; a checkpoint
        extends it only once half of it has passed (as far as this run knows), because writing
        it changes an indexed column: a page more to write and sync with every step.
        """
        now = self.now()
        seconds = self.engine.lease_seconds
        held = self.record.lease_expires_at
        if held is not None and held - now > seconds / 2:
            return None
        return now + seconds

    def take_resume(self, path: str) -> ResumeInput | None:
        if self.resume is not None and self.resume_path == path:
            resume, self.resume = self.resume, None
            return resume
        return None

    def resolve_context(self, variables: Mapping[str, Any]) -> expr.ResolveContext:
        return expr.ResolveContext(
            variables=variables,
            input=self.record.input,
            now=lambda: datetime.fromtimestamp(self.now(), UTC),
            history=lambda: list(self.history or []),
        )

    def check_deadline(self) -> None:
        deadline = self.record.deadline
        if deadline is not None and self.now() >= deadline:
            limit = deadline - self.record.created_at
            raise WorkflowTimeout(
                f"workflow '{self.definition.id}' ran past its timeout ({limit:g}s)",
                execution_id=self.id,
            )


class StepCtx:
    """The :class:`dwf.runtime.StepContext` the engine gives a step."""

    def __init__(
        self,
        run: Run,
        frame: Frame,
        step: StepDef,
        path: str,
        attempt: int,
        resume: ResumeInput | None,
    ) -> None:
        self.run = run
        self.frame = frame
        self.step = step
        self._path = path
        self._attempt = attempt
        self._resume = resume
        self.buffer = StepBuffer(frame.scope)
        self.state_writes: dict[str, Any] = {}

    # -- facts
    @property
    def execution_id(self) -> str:
        return self.run.id

    @property
    def step_path(self) -> str:
        return self._path

    @property
    def idempotency_key(self) -> str:
        return f"{self.run.id}:{self._path}"

    @property
    def workflow(self) -> WorkflowDefinition:
        return self.run.definition

    @property
    def input(self) -> Mapping[str, Any]:
        return self.run.record.input

    @property
    def resume(self) -> ResumeInput | None:
        return self._resume

    @property
    def attempt(self) -> int:
        return self._attempt

    def now(self) -> float:
        return self.run.now()

    # -- variables
    def resolve(self, value: Any) -> Any:
        return expr.resolve(value, self.run.resolve_context(self.buffer))

    def lookup(self, path: str) -> Any:
        return expr.lookup(path, self.run.resolve_context(self.buffer))

    def condition(self, field: str, op: str, value: Any) -> bool:
        return expr.evaluate_condition(field, op, value, self.run.resolve_context(self.buffer))

    def get(self, name: str) -> Any:
        return self.buffer.get(name)

    def has(self, name: str) -> bool:
        return name in self.buffer

    def set(self, name: str, value: Any) -> None:
        self.buffer.set(name, value)

    def delete(self, name: str) -> None:
        self.buffer.delete(name)

    @property
    def variables(self) -> Mapping[str, Any]:
        return self.buffer

    # -- private durable state
    def _key(self, key: str) -> str:
        return f"{self._path}|{key}"

    def state_get(self, key: str, default: Any = None) -> Any:
        full = self._key(key)
        if full in self.state_writes:
            value = self.state_writes[full]
            return default if value is DELETED else value
        return self.run.state.get(full, default)

    def state_set(self, key: str, value: Any) -> None:
        self.state_writes[self._key(key)] = value

    def state_delete(self, key: str) -> None:
        self.state_writes[self._key(key)] = DELETED

    def apply(self) -> None:
        """Move the buffered writes into the scope and the run state (not yet durable)."""
        self.buffer.commit()
        for key, value in self.state_writes.items():
            if value is DELETED:
                self.run.delete_state(key)
            else:
                self.run.set_state(key, value)
        self.state_writes.clear()

    def discard(self) -> None:
        self.buffer.discard()
        self.state_writes.clear()

    async def save(self) -> None:
        self.apply()
        await self.run.commit(self._path)

    def emit(self, event_type: str, **data: Any) -> None:
        self.run.engine.emit(event_type, self.run, step=self.step, path=self._path, **data)

    async def call_service(
        self, service: str, method: str, payload: Any, *, idempotency_key: str | None = None
    ) -> Any:
        try:
            result = await self.run.engine.services.call(
                service, method, payload, idempotency_key=idempotency_key or self.idempotency_key
            )
        except RegistryError as exc:
            raise NonRetryableError(exc.message, step=self.step.id) from exc
        return to_json_safe(result, f"service {service}.{method}")

    # -- nesting
    async def run_sequence(self, steps: Sequence[StepDef], *, frame: str) -> FrameResult:
        self.apply()
        addr = f"{self._path}[{frame}]"
        child = Frame(
            addr=addr,
            prefix=f"{addr}/",
            steps={s.id: s for s in steps},
            first=steps[0].id if steps else None,
            scope=self.frame.scope,
            fallthrough={a.id: b.id for a, b in itertools.pairwise(steps)},
        )
        result = await run_frame(self.run, child)
        if result.halt is None:
            self.run.delete_state_under(addr)
        return result

    async def run_branches(
        self, branches: Sequence[StepDef], *, required: int, fail_fast: bool
    ) -> list[BranchResult]:
        self.apply()
        return await _run_branches(self, branches, required, fail_fast)

    async def run_workflow(self, workflow_id: str, payload: Mapping[str, Any]) -> SubWorkflowResult:
        self.apply()
        return await self.run.engine._run_child(self, workflow_id, dict(payload))


async def run_frame(run: Run, frame: Frame) -> FrameResult:
    """Run a frame from its stored position until it ends or halts."""
    pos_key = f"{frame.addr}|pos"
    halt_key = f"{frame.addr}|halt"
    marker = run.state.get(halt_key)
    if marker is not None:
        if run.resume is not None and run.resume_path == marker["path"]:
            run.delete_state(halt_key)
            if not marker["reenter"]:
                resume = run.take_resume(marker["path"])
                assert resume is not None
                if resume.response is not None:
                    frame.scope.set("response", resume.response)
                if resume.approved is not None:
                    frame.scope.set("approved", resume.approved)
        else:
            return FrameResult(halt=_halt_from_marker(marker))
    step_id = run.state.get(pos_key, frame.first)
    output: Any = None
    if step_id == FINISHED and frame.addr:
        # The frame's last step completed before a crash or halt: its output was committed
        # with that step.
        output = (run.state.get(f"{frame.addr}|out") or {}).get("output")
    while step_id is not None and step_id != FINISHED:
        step = frame.steps.get(step_id)
        if step is None:
            raise StepFailure(
                {
                    "type": "StepNotFound",
                    "message": f"step '{step_id}' does not exist in this part of the workflow",
                    "step": step_id,
                }
            )
        path = frame.prefix + step_id
        result = await _run_step(run, frame, step, path)
        if isinstance(result, Halt):
            return FrameResult(halt=result)
        step_id, output = result
    return FrameResult(output=output)


def _halt_from_marker(marker: Mapping[str, Any]) -> PropagatedHalt:
    return PropagatedHalt(
        data=marker["data"],
        prompt=marker.get("prompt"),
        resume_at=None,
        reenter=True,
        expires_at=marker.get("expires_at"),
        path=marker["path"],
    )


def _retry_policy(step: StepDef, retryable: bool) -> tuple[float | None, int, float, float]:
    if not retryable:
        return None, 0, 0.0, 1.0
    config = step.config
    return (
        getattr(config, "timeout", None),
        int(getattr(config, "retries", 0) or 0),
        float(getattr(config, "retry_delay", 1.0)),
        float(getattr(config, "retry_backoff", 2.0)),
    )


def _describe_error(exc: BaseException, step: StepDef, path: str) -> dict[str, Any]:
    if isinstance(exc, DwfError):
        error = exc.to_dict()
    else:
        error = {"type": type(exc).__name__, "message": str(exc) or type(exc).__name__}
    error["step"] = step.id
    error["path"] = path
    return error


async def _run_step(
    run: Run, frame: Frame, step: StepDef, path: str
) -> tuple[str | None, Any] | Halt:
    """Run one step with its retry/timeout policy and on_error routing; commit its checkpoint."""
    engine = run.engine
    step_type = engine.registry.step_type(step.type)
    timeout, retries, delay, backoff = _retry_policy(step, step_type.retryable)
    resume = run.take_resume(path)
    attempt = 1
    started = run.now()
    engine.emit("step.started", run, step=step, path=path, attempt=attempt)
    while True:
        run.check_deadline()
        if run.record.cancel_requested:
            raise Cancelled()
        ctx = StepCtx(run, frame, step, path, attempt, resume)
        limit = timeout
        deadline_left = None if run.record.deadline is None else run.record.deadline - run.now()
        if deadline_left is not None and (limit is None or deadline_left < limit):
            limit = max(deadline_left, 0.0)
        timer: asyncio.Timeout | None = None
        error_exc: BaseException
        try:
            if limit is None:
                outcome: Outcome = await step_type.execute(step, ctx)
            else:
                async with asyncio.timeout(limit) as timer:
                    outcome = await step_type.execute(step, ctx)
        except (LeaseLost, Cancelled, StoreError):
            # The store or the ownership failed, not the step: nothing of this is workflow
            # logic (no retry, no on_error); the execution stays at its last checkpoint.
            ctx.discard()
            raise
        except StepFailure as failure:  # a step nested in this one failed unhandled
            if step.on_error is None:
                ctx.discard()
                step_type.on_failure(step, ctx)
                ctx.apply()
                raise
            ctx.discard()
            step_type.on_failure(step, ctx)
            ctx.apply()
            return await _route_error(run, frame, step, path, failure.error, started, attempt)
        except TimeoutError as exc:
            ctx.discard()
            if timer is None or not timer.expired():
                error_exc = exc  # the step's own code raised TimeoutError: an ordinary failure
            elif timeout is None or (deadline_left is not None and deadline_left <= timeout):
                raise WorkflowTimeout(
                    f"workflow '{run.definition.id}' ran past its deadline while step "
                    f"'{step.id}' was running",
                    execution_id=run.id,
                    step=step.id,
                ) from exc
            else:
                error_exc = StepTimeout(
                    f"step '{step.id}' timed out after {timeout:g}s", step=step.id
                )
                error_exc.__cause__ = exc
        except WorkflowTimeout:
            ctx.discard()
            raise
        except Exception as exc:  # a failing step is data, not a crash
            ctx.discard()
            error_exc = exc
        else:
            return await _complete(run, frame, step, path, ctx, outcome, started)
        error = _describe_error(error_exc, step, path)
        if attempt <= retries and not isinstance(error_exc, NonRetryableError):
            wait = delay * backoff ** (attempt - 1)
            run.pending_entries.append(
                run.entry(step, path, "retried", started, attempt=attempt, error=error)
            )
            logger.warning("step %s failed (attempt %d), retrying in %.2fs", path, attempt, wait)
            await asyncio.sleep(wait)
            attempt += 1
            started = run.now()
            continue
        engine.emit("step.failed", run, step=step, path=path, error=error)
        if step.on_error is None:
            run.delete_state_under(path)
            run.pending_entries.append(
                run.entry(step, path, "failed", started, attempt=attempt, error=error)
            )
            raise StepFailure(error)
        return await _route_error(run, frame, step, path, error, started, attempt)


async def _route_error(
    run: Run,
    frame: Frame,
    step: StepDef,
    path: str,
    error: dict[str, Any],
    started: float,
    attempt: int,
) -> tuple[str | None, Any]:
    """Continue at the step's ``on_error`` handler, which alone sees ``$_last_error``."""
    assert step.on_error is not None
    failed = run.entry(step, path, "failed", started, attempt=attempt, error=error)
    run.delete_state_under(path)
    if step.on_error != FINISHED:  # `on_error: __FINISHED__` ends quietly: no handler reads it
        frame.scope.set("_last_error", {k: error.get(k) for k in ("step", "type", "message")})
        run.set_state(f"{frame.addr}|clear_error", step.on_error)
    run.set_state(f"{frame.addr}|pos", step.on_error)
    await run.commit(path, [failed])
    return step.on_error, None


async def _complete(
    run: Run, frame: Frame, step: StepDef, path: str, ctx: StepCtx, outcome: Outcome, started: float
) -> tuple[str | None, Any] | Halt:
    engine = run.engine
    pos_key = f"{frame.addr}|pos"
    if isinstance(outcome, PropagatedHalt):
        ctx.apply()
        run.set_state(pos_key, step.id)
        return outcome
    if isinstance(outcome, Halt):
        ctx.apply()
        if outcome.reenter:
            resume_at: str | None = step.id
        elif outcome.resume_at is DEFAULT_NEXT:
            resume_at = frame.next_of(step)
        else:
            resume_at = outcome.resume_at
        run.set_state(pos_key, resume_at if resume_at is not None else FINISHED)
        marker = {
            "path": path,
            "step": step.id,
            "data": outcome.data,
            "prompt": outcome.prompt,
            "reenter": outcome.reenter,
            "expires_at": outcome.expires_at,
        }
        run.set_state(f"{frame.addr}|halt", marker)
        entry = run.entry(step, path, "halted", started, attempt=ctx.attempt, output=outcome.data)
        if not frame.addr:
            # The workflow halts here: the engine commits this step with the halt, in one
            # transaction (nothing runs in between), and then emits its step.halted.
            run.pending_entries.append(entry)
            run.last_step = ("step.halted", step, path, {"halt": outcome.data})
        else:
            await run.commit(path, [entry])
            engine.emit("step.halted", run, step=step, path=path, halt=outcome.data)
        return replace(
            _halt_from_marker(marker), reenter=outcome.reenter, resume_at=outcome.resume_at
        )
    next_id = frame.next_of(step) if outcome.next is DEFAULT_NEXT else outcome.next
    ctx.apply()
    run.delete_state_under(path)
    clear_key = f"{frame.addr}|clear_error"
    if run.state.get(clear_key) == step.id:
        frame.scope.delete("_last_error")
        run.delete_state(clear_key)
    run.set_state(pos_key, next_id if next_id is not None else FINISHED)
    output = outcome.output
    if (next_id is None or next_id == FINISHED) and frame.addr:
        # A nested frame ends here: keep its output in the same checkpoint, so a crash before
        # the enclosing step records it loses nothing.
        run.set_state(f"{frame.addr}|out", {"output": output})
    entry = run.entry(step, path, "completed", started, attempt=ctx.attempt, output=output)
    if not frame.addr and (next_id is None or next_id == FINISHED):
        # The workflow ends with this step: the engine commits it with the completion, in one
        # transaction (nothing runs in between), and then emits its step.completed.
        run.pending_entries.append(entry)
        run.last_step = ("step.completed", step, path, {"output": output})
        return next_id, output
    await run.commit(path, [entry])
    engine.emit("step.completed", run, step=step, path=path, output=output)
    return next_id, output


async def _run_branches(
    ctx: StepCtx, branches: Sequence[StepDef], required: int, fail_fast: bool
) -> list[BranchResult]:
    run = ctx.run
    results: dict[str, BranchResult] = {}
    scopes: dict[str, OverlayScope] = {}
    tasks: dict[asyncio.Task[FrameResult], str] = {}
    for branch in branches:
        addr = _branch_addr(ctx.step_path, branch.id)
        done = run.state.get(f"{addr}|done")
        scope = OverlayScope(ctx.frame.scope, addr, run.state, run.dirty)
        scopes[branch.id] = scope
        if done is not None:
            results[branch.id] = BranchResult(branch.id, "completed", output=done.get("output"))
            continue
        frame = Frame(addr, f"{ctx.step_path}/", {branch.id: branch}, branch.id, scope)
        tasks[asyncio.ensure_future(run_frame(run, frame))] = branch.id

    def completed_count() -> int:
        return sum(1 for r in results.values() if r.status == "completed")

    pending = set(tasks)
    try:
        while pending and completed_count() < required:
            finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                branch_id = tasks[task]
                exc = task.exception()
                if isinstance(exc, LeaseLost | Cancelled | WorkflowTimeout | StoreError):
                    raise exc
                if isinstance(exc, StepFailure):
                    results[branch_id] = BranchResult(branch_id, "failed", error=exc.error)
                elif exc is not None:
                    error = {"type": type(exc).__name__, "message": str(exc)}
                    results[branch_id] = BranchResult(branch_id, "failed", error=error)
                else:
                    frame_result = task.result()
                    if frame_result.halt is not None:
                        results[branch_id] = BranchResult(
                            branch_id, "halted", halt=frame_result.halt
                        )
                    else:
                        addr = _branch_addr(ctx.step_path, branch_id)
                        run.set_state(f"{addr}|done", {"output": frame_result.output})
                        await run.commit(ctx.step_path)
                        results[branch_id] = BranchResult(
                            branch_id, "completed", output=frame_result.output
                        )
            if fail_fast and any(r.status == "failed" for r in results.values()):
                break
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    for task in pending:
        results.setdefault(tasks[task], BranchResult(tasks[task], "cancelled"))
    ordered = [results.get(b.id, BranchResult(b.id, "cancelled")) for b in branches]
    if completed_count() >= required:
        for branch in branches:
            result = results.get(branch.id)
            if result is None or result.status != "completed":
                continue
            values, deleted = scopes[branch.id].changes()
            for name, value in values.items():
                ctx.set(name, value)
            for name in deleted:
                ctx.delete(name)
    return ordered


def _branch_addr(parallel_path: str, branch_id: str) -> str:
    # Not "<path>/<id>": that is the branch step's own path, whose bookkeeping is dropped when
    # the step completes, while the branch's overlay must live until the parallel step merges it.
    return f"{parallel_path}/#{branch_id}"


def new_execution_id() -> str:
    return uuid.uuid4().hex


def monotonic_ms() -> float:
    return time.monotonic() * 1000.0


__all__ += ["Cancelled", "StepCtx", "new_execution_id", "to_json_safe"]
_ = ExecutionError
