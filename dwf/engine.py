"""The durable engine: run, resume, recover.

Guarantees (see docs/durability.md):

* every step commits one atomic checkpoint (variable writes, next position, audit entry);
* positions reach inside loop iterations, parallel branches and child workflows, so a halt or a
  crash anywhere resumes exactly there;
* an execution is pinned to the content hash of its definition, which the store keeps;
* one process owns a running execution through a lease; only a ``halted`` execution can be
  resumed, and of concurrent resumes exactly one wins;
* ``recover`` continues executions whose owner died, from their last checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from dwf._frames import (
    Cancelled,
    Frame,
    PropagatedHalt,
    Run,
    StepCtx,
    StepFailure,
    new_execution_id,
    run_frame,
    to_json_safe,
)
from dwf._inputs import validate_input
from dwf._owners import new_owner_id, owner_is_dead
from dwf._pinning import bundle
from dwf.errors import (
    ConfigurationError,
    DefinitionError,
    DwfError,
    ExecutionNotFound,
    InvalidTransition,
    LeaseLost,
    StoreError,
    WorkflowTimeout,
)
from dwf.extensions import Halt, Registry, default_registry, did_you_mean
from dwf.results import Event, EventHandler, RunResult
from dwf.runtime import ResumeInput, SubWorkflowResult
from dwf.services import Services
from dwf.storage.base import (
    TERMINAL_STATUSES,
    AuditEntry,
    ExecutionRecord,
    ExecutionSummary,
    Status,
    Store,
)

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from dwf.dsl.model import WorkflowDefinition

logger = logging.getLogger("dwf")

__all__ = ["Engine", "Event", "RunResult", "validate_input"]

T = TypeVar("T")


class Engine:
    """Runs workflows durably against a store.

    Args:
        store: a :class:`Store`, a store URL (``memory://``, ``sqlite:///path``, ...), or
            ``None`` for ``$DWF_STORE`` or the default SQLite file in the user's data directory.
        services: the registry ``call`` steps resolve against.
        registry: step types and extensions (default: core step types only).
        workflows: workflows that ``workflow`` steps may start by id.
        on_event: a callback (or several) for lifecycle events; exceptions are logged.
        lease_seconds: how long an owner keeps an execution without renewing.
        clock: the time source (epoch seconds); inject one in tests.
    """

    def __init__(
        self,
        store: Store | str | None = None,
        *,
        services: Services | Mapping[str, Any] | None = None,
        registry: Registry | None = None,
        workflows: Iterable[WorkflowDefinition] | Mapping[str, WorkflowDefinition] | None = None,
        on_event: EventHandler | Iterable[EventHandler] | None = None,
        lease_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if store is None or isinstance(store, str):
            from dwf.storage import open_store

            store = open_store(store)
        self.store: Store = store
        if services is None:
            services = Services()
        elif not isinstance(services, Services):
            services = Services(services)
        self.services: Services = services
        self.registry = registry or default_registry()
        if isinstance(workflows, Mapping):
            self.workflows: dict[str, WorkflowDefinition] = dict(workflows)
        else:
            self.workflows = {w.id: w for w in workflows or ()}
        if on_event is None:
            self._handlers: list[EventHandler] = []
        elif callable(on_event):
            self._handlers = [on_event]
        else:
            self._handlers = list(on_event)
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.owner = new_owner_id()
        self._definitions: dict[str, tuple[WorkflowDefinition, dict[str, WorkflowDefinition]]] = {}
        self._active: dict[str, Run] = {}
        self._bundles: dict[
            tuple[int, int],
            tuple[WorkflowDefinition, tuple[str, str, dict[str, WorkflowDefinition]]],
        ] = {}
        self._renewer: asyncio.Task[None] | None = None
        # Executions this engine claimed whose drive ended with an error (the store went away,
        # the task was cancelled): still ours in the store, but nobody drives them any more.
        self._abandoned: set[str] = set()

    # ------------------------------------------------------------------ events

    def subscribe(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    def emit(
        self, event_type: str, run: Run, *, step: Any = None, path: str | None = None, **data: Any
    ) -> None:
        if not self._handlers:
            return
        event = Event(
            type=event_type,
            execution_id=run.id,
            workflow_id=run.record.workflow_id,
            timestamp=self.clock(),
            step_path=path,
            step_id=getattr(step, "id", None),
            step_type=getattr(step, "type", None),
            data=data,
        )
        for handler in list(self._handlers):
            try:
                handler(event)
            except Exception:  # a subscriber never breaks the run
                logger.exception("event subscriber %r raised on %s", handler, event_type)

    # ------------------------------------------------------------------ public API

    async def run(
        self,
        workflow: WorkflowDefinition,
        input: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
    ) -> RunResult:
        """Start an execution and drive it until it completes, halts or fails.

        Raises :class:`InputValidationError` for input that does not match ``inputs`` (no
        execution is created); step failures are returned as ``status == "failed"``.
        """
        run = await self._create(workflow, input, execution_id=execution_id)
        self.emit("workflow.started", run, input=run.record.input)
        return await self._drive(run)

    async def start(
        self,
        workflow: WorkflowDefinition,
        input: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
        start_within: float | None = None,
    ) -> str:
        """Create a ``pending`` execution without running it (a worker or :meth:`continue_`
        runs it). Returns its id.

        With ``start_within`` (seconds), an execution still pending after that long (its queue
        message was lost, its process died) is started by :meth:`recover`, as a due timer.
        """
        record = self._new_record(workflow, input, execution_id, status=Status.PENDING)
        if start_within is not None:
            record.wake_at = record.created_at + start_within
        digest, text, children = self._bundle(workflow, self.workflows)
        record.definition_hash = digest
        self._definitions[digest] = (workflow, children)
        await self.store.create(record, text)
        return record.id

    async def continue_(self, execution_id: str) -> RunResult:
        """Run a ``pending`` execution (created by :meth:`start`)."""
        record = await self._load(execution_id)
        if record.status != Status.PENDING:
            raise InvalidTransition(
                f"execution {execution_id} is {record.status}; only pending executions can be "
                "started",
                execution_id=execution_id,
            )
        run = await self._claim(record)
        self.emit("workflow.started", run, input=run.record.input)
        return await self._drive(run)

    async def resume(
        self,
        execution_id: str,
        *,
        approved: bool | None = None,
        response: Any = None,
        by: str | None = None,
        expected_version: int | None = None,
    ) -> RunResult:
        """Resume a halted execution with a person's answer.

        With ``expected_version``, resume only if the execution is still at that version (the
        halt that was answered), else raise :class:`InvalidTransition`; a queued resume uses it
        so that it never answers a later halt.
        """
        record = await self._load(execution_id)
        if record.parent_id is not None:
            raise InvalidTransition(
                f"execution {execution_id} is a sub-workflow of {record.parent_id}; resume "
                f"{record.parent_id} instead",
                execution_id=execution_id,
            )
        if record.status != Status.HALTED:
            hint = {
                Status.COMPLETED: "it has finished",
                Status.FAILED: "it has failed",
                Status.CANCELLED: "it was cancelled",
                Status.RUNNING: "it is running now",
                Status.PENDING: "it has not started yet",
            }.get(record.status, "")
            raise InvalidTransition(
                f"execution {execution_id} is {record.status} ({hint}); only halted executions "
                "can be resumed",
                execution_id=execution_id,
                status=str(record.status),
            )
        if expected_version is not None and record.version != expected_version:
            raise InvalidTransition(
                f"execution {execution_id} changed since this resume was prepared (version "
                f"{expected_version}, now {record.version}); load it again",
                execution_id=execution_id,
            )
        response = to_json_safe(response, "the resume response") if response is not None else None
        run = await self._claim(record)
        return await self._resume_run(run, ResumeInput(approved=approved, response=response, by=by))

    async def recover(self, execution_id: str | None = None) -> list[RunResult]:
        """Continue executions whose owner is gone, fire expired approval timeouts, fail
        executions past their workflow deadline (pending, running or halted), and start pending
        executions whose ``start_within`` passed. With an id, only that execution (it must need
        recovery)."""
        now = self.clock()
        if execution_id is not None:
            records = [await self._load(execution_id)]
        else:
            summaries = await self.store.find(status=Status.RUNNING, limit=1000)
            summaries += await self.store.find_due(now=now, limit=1000)
            seen: set[str] = set()
            records = []
            for summary in summaries:
                if summary.id in seen or summary.parent_id is not None:
                    continue
                seen.add(summary.id)
                if summary.status == Status.RUNNING and self._has_live_owner(summary, now):
                    continue  # a live owner holds it: skip the load
                loaded = await self.store.load(summary.id)
                if loaded is not None:
                    records.append(loaded)
        results: list[RunResult] = []
        for record in records:
            result = await self._recover_one(record, now, explicit=execution_id is not None)
            if result is not None:
                results.append(result)
        return results

    async def tick(self, *, pending_after: float | None = None) -> list[RunResult]:
        """One round of a worker's housekeeping: :meth:`recover` (dead owners, expired leases,
        approval timeouts, deadlines of pending, running and halted executions), then, with
        ``pending_after``, start the pending executions created at least that many seconds ago
        (their queue message was lost, or no broker is used: ``dwf recover --loop``).
        Executions that another process takes first are skipped."""
        results = await self.recover()
        if pending_after is None:
            return results
        cutoff = self.clock() - pending_after
        pending: list[ExecutionSummary] = []
        page, offset = 500, 0
        while True:  # newest first: the old ones are on the last pages
            found = await self.store.find(status=Status.PENDING, limit=page, offset=offset)
            pending += [s for s in found if s.parent_id is None and s.created_at <= cutoff]
            if len(found) < page:
                break
            offset += page
        for summary in sorted(pending, key=lambda s: (s.created_at, s.id)):
            try:
                results.append(await self.continue_(summary.id))
            except (InvalidTransition, ExecutionNotFound):
                continue  # started, cancelled or deleted by someone else meanwhile
        return results

    async def get(self, execution_id: str) -> ExecutionRecord:
        """The stored execution (raises :class:`ExecutionNotFound`)."""
        return await self._load(execution_id)

    async def entries(self, execution_id: str) -> list[AuditEntry]:
        await self._load(execution_id)
        return await self.store.entries(execution_id)

    async def cancel(self, execution_id: str) -> RunResult:
        """Cancel a pending or halted execution now; a running one stops at its next step."""
        record = await self._load(execution_id)
        if record.status in TERMINAL_STATUSES:
            raise InvalidTransition(
                f"execution {execution_id} is already {record.status}", execution_id=execution_id
            )
        if record.status == Status.RUNNING:
            await self.store.request_cancel(execution_id)
            active = self._active.get(execution_id)
            if active is not None:
                active.record.cancel_requested = True
            return RunResult.from_record(await self._load(execution_id))
        now = self.clock()
        entry = AuditEntry(execution_id, "", "", "", "cancelled", now, now)
        ok = await self.store.set_status(
            execution_id,
            expected_version=record.version,
            status=Status.CANCELLED,
            error={"type": "Cancelled", "message": "cancelled by request"},
            entry=entry,
        )
        if not ok:
            raise InvalidTransition(f"execution {execution_id} changed meanwhile; try again")
        return RunResult.from_record(await self._load(execution_id))

    async def close(self) -> None:
        """Stop lease renewal, close the extensions' resources (those with an ``aclose()``,
        e.g. the AI extension's MCP connections) and the store."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        for extension in self.registry.extensions.values():
            aclose = getattr(extension, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:  # closing must go on for the others and the store
                    logger.warning("closing extension %r failed", extension, exc_info=True)
        await self.store.close()

    # sync wrappers -------------------------------------------------------------

    def run_sync(
        self, workflow: WorkflowDefinition, input: Mapping[str, Any] | None = None, **kw: Any
    ) -> RunResult:
        """:meth:`run` for synchronous callers (not from inside an event loop)."""
        return _sync(self.run(workflow, input, **kw), "run")

    def resume_sync(self, execution_id: str, **kw: Any) -> RunResult:
        return _sync(self.resume(execution_id, **kw), "resume")

    def recover_sync(self, execution_id: str | None = None) -> list[RunResult]:
        return _sync(self.recover(execution_id), "recover")

    # ------------------------------------------------------------------ internals

    def _new_record(
        self,
        workflow: WorkflowDefinition,
        input: Mapping[str, Any] | None,
        execution_id: str | None,
        *,
        status: Status,
        parent: Run | None = None,
        parent_step: str | None = None,
        timeout: float | None = None,
    ) -> ExecutionRecord:
        values = validate_input(workflow, input)
        now = self.clock()
        limit = timeout if timeout is not None else workflow.timeout
        running = status == Status.RUNNING
        return ExecutionRecord(
            id=execution_id or new_execution_id(),
            workflow_id=workflow.id,
            definition_hash=workflow.hash,
            status=status,
            input=values,
            parent_id=parent.id if parent else None,
            parent_step=parent_step,
            owner=self.owner if running else None,
            lease_expires_at=now + self.lease_seconds if running else None,
            deadline=now + limit if limit is not None else None,
            created_at=now,
            updated_at=now,
        )

    async def _create(
        self,
        workflow: WorkflowDefinition,
        input: Mapping[str, Any] | None,
        *,
        execution_id: str | None,
        parent: Run | None = None,
        parent_step: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (a stored deadline)
    ) -> Run:
        record = self._new_record(
            workflow, input, execution_id, status=Status.RUNNING, parent=parent,
            parent_step=parent_step, timeout=timeout,
        )  # fmt: skip
        catalog = parent.catalog if parent is not None else self.workflows
        digest, text, children = self._bundle(workflow, catalog)
        record.definition_hash = digest
        self._definitions[digest] = (workflow, children)
        stored = await self.store.create(record, text)
        return Run(self, stored, workflow, self.owner, catalog=children)

    def _bundle(
        self, workflow: WorkflowDefinition, catalog: Mapping[str, WorkflowDefinition]
    ) -> tuple[str, str, dict[str, WorkflowDefinition]]:
        key = (id(workflow), id(catalog))
        cached = self._bundles.get(key)
        if cached is None or cached[0] is not workflow:
            cached = (workflow, bundle(workflow, catalog))
            self._bundles[key] = cached
        return cached[1]

    async def _load(self, execution_id: str) -> ExecutionRecord:
        record = await self.store.load(execution_id)
        if record is None:
            raise ExecutionNotFound(
                f"no execution '{execution_id}' in store {self.store.url}; check the id and the "
                "--store option (dwf list shows executions)",
                execution_id=execution_id,
            )
        return record

    async def _definition(
        self, record: ExecutionRecord
    ) -> tuple[WorkflowDefinition, dict[str, WorkflowDefinition]]:
        cached = self._definitions.get(record.definition_hash)
        if cached is not None:
            return cached
        text = await self.store.load_definition(record.definition_hash)
        if text is None:
            raise StoreError(
                f"the definition {record.definition_hash} of execution {record.id} is missing "
                "from the store",
                execution_id=record.id,
            )
        from dwf.dsl import parse_workflow

        try:
            doc = json.loads(text)
            children: dict[str, WorkflowDefinition] = {}
            if isinstance(doc, dict) and doc.get("dwf_bundle") == 1:
                for wid, raw in doc["workflows"].items():
                    children[wid] = parse_workflow(raw, registry=self.registry)
                doc = doc["main"]
            definition = parse_workflow(doc, registry=self.registry)
        except DefinitionError as exc:
            raise ConfigurationError(
                f"the pinned definition of execution {record.id} (workflow "
                f"'{record.workflow_id}') cannot be loaded with the installed step types: {exc}"
            ) from exc
        self._definitions[record.definition_hash] = (definition, children)
        return definition, children

    def _missing_services(
        self, definition: WorkflowDefinition, children: Mapping[str, WorkflowDefinition]
    ) -> list[str]:
        needed = {
            service
            for workflow in (definition, *children.values())
            for step in workflow.all_steps()
            if step.type == "call"
            and isinstance(service := getattr(step.config, "service", None), str)
        }
        return sorted(name for name in needed if name not in self.services)

    async def _claim(self, record: ExecutionRecord) -> Run:
        definition, children = await self._definition(record)
        missing = self._missing_services(definition, children)
        if missing:
            # Continuing without them would fail the execution for good; leave it as it is.
            raise ConfigurationError(
                f"execution {record.id} (workflow '{record.workflow_id}') calls services that "
                f"are not registered here: {', '.join(missing)}. Pass --services FILE (or "
                "register them) and try again; the execution is unchanged",
                execution_id=record.id,
            )
        claimed = await self.store.claim(
            record.id,
            owner=self.owner,
            lease_expires_at=self.clock() + self.lease_seconds,
            expected_version=record.version,
        )
        if claimed is None:
            raise InvalidTransition(
                f"execution {record.id} was changed by another process (resumed or recovered "
                "concurrently); run `dwf show` to see its state",
                execution_id=record.id,
            )
        self._abandoned.discard(record.id)
        return Run(self, claimed, definition, self.owner, catalog=children)

    async def _resume_run(self, run: Run, resume: ResumeInput) -> RunResult:
        halt = run.record.halt or {}
        run.resume = resume
        run.resume_path = halt.get("path")
        now = self.clock()
        kind = "timed_out" if resume.timed_out else "resumed"
        run.pending_entries.append(
            AuditEntry(
                run.id, halt.get("path", ""), halt.get("step", ""), "", kind, now, now,
                output={"approved": resume.approved, "response": resume.response, "by": resume.by},
            )
        )  # fmt: skip
        self.emit("workflow.resumed", run, approved=resume.approved, response=resume.response)
        return await self._drive(run)

    async def _recover_one(
        self, record: ExecutionRecord, now: float, *, explicit: bool
    ) -> RunResult | None:
        if record.parent_id is not None:
            if explicit:
                raise InvalidTransition(
                    f"execution {record.id} is a sub-workflow; recover its parent "
                    f"{record.parent_id} instead"
                )
            return None
        status = record.status
        try:
            if status == Status.RUNNING:
                if self._has_live_owner(record, now):
                    if explicit:
                        raise InvalidTransition(
                            f"execution {record.id} is running in a live process ({record.owner}); "
                            "it can be recovered when that process is gone or its lease expires"
                        )
                    return None
                run = await self._claim(record)
                run.pending_entries.append(AuditEntry(run.id, "", "", "", "recovered", now, now))
                self.emit("workflow.recovered", run, previous_owner=record.owner)
                return await self._drive(run)
            if status == Status.PENDING and record.deadline is not None and record.deadline <= now:
                run = await self._claim(record)
                return await self._drive(run)  # fails at once with WorkflowTimeout
            if status == Status.PENDING and record.wake_at is not None and record.wake_at <= now:
                run = await self._claim(record)  # not started in time (see start_within)
                self.emit("workflow.started", run, input=run.record.input)
                return await self._drive(run)
            if status == Status.HALTED:
                if record.deadline is not None and record.deadline <= now:
                    run = await self._claim(record)
                    return await self._drive(run)  # fails at once with WorkflowTimeout
                if record.wake_at is not None and record.wake_at <= now:
                    run = await self._claim(record)
                    marker = _earliest_timer(run.record.state) or record.halt or {}
                    run.record.halt = marker
                    return await self._resume_run(run, ResumeInput(timed_out=True))
            if explicit:
                raise InvalidTransition(f"execution {record.id} is {status}; nothing to recover")
        except InvalidTransition:
            if explicit:
                raise
            return None  # someone else recovered it first
        except ConfigurationError as exc:
            if explicit:
                raise
            logger.warning("cannot recover %s: %s", record.id, exc.message)
            return None
        return None

    async def _drive(self, run: Run) -> RunResult:
        """Run the root frame and record the final status."""
        self._active[run.id] = run
        self._ensure_renewer()
        record = run.record
        if run.history is None and run.definition.uses_history:
            run.history = [
                {"step": e.step_path, "type": e.step_type, "action": e.action}
                for e in await self.store.entries(run.id)
            ]
        steps = run.definition.steps
        frame = Frame("", "", {s.id: s for s in steps}, steps[0].id if steps else None, run.root)
        try:
            try:
                run.check_deadline()
                result = await run_frame(run, frame)
            except StepFailure as failure:
                return await self._finish_failed(run, failure.error)
            except WorkflowTimeout as exc:
                error = exc.to_dict()
                return await self._finish_failed(run, error)
            except Cancelled:
                error = {"type": "Cancelled", "message": "cancelled by request"}
                await run.commit("", status=Status.CANCELLED, error=error, set_error=True)
                self.emit("workflow.cancelled", run)
                return RunResult.from_record(await self._load(run.id))
            if result.halt is not None:
                halt = _halt_record(result.halt)
                expiry = _earliest_expiry(run.record.state)
                await run.commit(
                    halt["path"], status=Status.HALTED, halt=halt, set_halt=True,
                    wake_at=expiry, set_wake_at=True,
                )  # fmt: skip
                record.halt = halt
                self._emit_last_step(run)
                self.emit("workflow.halted", run, halt=halt["data"], prompt=halt.get("prompt"))
                return RunResult(run.id, "halted", halt=halt, workflow_id=record.workflow_id)
            output = run.record.variables.get("result")
            await run.commit(
                "", status=Status.COMPLETED, output=output, set_output=True, halt=None,
                set_halt=True, wake_at=None, set_wake_at=True,
            )  # fmt: skip
            self._emit_last_step(run)
            self.emit("workflow.completed", run, output=output)
            return RunResult(run.id, "completed", output=output, workflow_id=record.workflow_id)
        except StoreError as exc:
            self._abandoned.add(run.id)  # ours, but undriven: recover() may take it back
            raise StoreError(
                f"{exc.message} Execution {run.id} is left 'running' at its last checkpoint; "
                f"`dwf recover {run.id}` continues it once the store works again.",
                execution_id=run.id,
            ) from exc
        except LeaseLost:
            logger.warning("lost the lease of execution %s; another process owns it now", run.id)
            current = await self.store.load(run.id)
            return RunResult.from_record(current) if current else RunResult(run.id, "running")
        except BaseException:
            # Still ours in the store, but nobody drives it now: recover() may take it back at
            # once instead of waiting for the lease to expire.
            self._abandoned.add(run.id)
            raise
        finally:
            self._active.pop(run.id, None)
            if not self._active and self._renewer is not None:
                self._renewer.cancel()
                self._renewer = None

    def _emit_last_step(self, run: Run) -> None:
        """The event of the step committed with the execution's completion or halt."""
        if run.last_step is not None:
            event_type, step, path, data = run.last_step
            run.last_step = None
            self.emit(event_type, run, step=step, path=path, **data)

    async def _finish_failed(self, run: Run, error: dict[str, Any]) -> RunResult:
        await run.commit(
            error.get("path", ""), status=Status.FAILED, error=error, set_error=True,
            halt=None, set_halt=True, wake_at=None, set_wake_at=True,
        )  # fmt: skip
        self.emit("workflow.failed", run, error=error)
        return RunResult(run.id, "failed", error=error, workflow_id=run.record.workflow_id)

    async def _run_child(
        self, ctx: StepCtx, workflow_id: str, payload: dict[str, Any]
    ) -> SubWorkflowResult:
        run = ctx.run
        key = f"{ctx.step_path}|child"
        child_id = run.state.get(key)
        record = await self.store.load(child_id) if child_id else None
        if record is None:
            definition = run.catalog.get(workflow_id) or self.workflows.get(workflow_id)
            if definition is None:
                names = set(run.catalog) | set(self.workflows)
                known = ", ".join(sorted(names)) or "none"
                raise ConfigurationError(
                    f"sub-workflow '{workflow_id}' is not known"
                    f"{did_you_mean(workflow_id, names)}; "
                    f"known workflows: {known}. Put its file next to the main workflow or pass "
                    "--workflows PATH"
                )
            child_id = uuid.uuid5(uuid.NAMESPACE_URL, f"dwf:{run.id}/{ctx.step_path}").hex
            try:
                child = await self._create(
                    definition, payload, execution_id=child_id, parent=run,
                    parent_step=ctx.step_path, timeout=getattr(ctx.step.config, "timeout", None),
                )  # fmt: skip
            except InvalidTransition:
                existing = await self.store.load(child_id)
                assert existing is not None
                record = existing
            else:
                run.set_state(key, child_id)
                await run.commit(ctx.step_path)
                self.emit("workflow.started", child, input=child.record.input, parent_id=run.id)
                return _child_result(await self._drive(child))
        run.set_state(key, record.id)
        if record.status == Status.HALTED:
            if ctx.resume is None:
                return _child_result(RunResult.from_record(record))
            child = await self._claim(record)
            return _child_result(await self._resume_run(child, ctx.resume))
        if record.status == Status.RUNNING:
            child = await self._claim(record)
            return _child_result(await self._drive(child))
        if record.status == Status.PENDING:
            child = await self._claim(record)
            return _child_result(await self._drive(child))
        return _child_result(RunResult.from_record(record))

    def _has_live_owner(self, record: ExecutionRecord | ExecutionSummary, now: float) -> bool:
        """True when a running execution has a live owner: a lease that has not expired, held
        by a process that is not known to be dead, and not one this engine abandoned."""
        if record.lease_expires_at is not None and record.lease_expires_at <= now:
            return False
        if record.owner == self.owner:
            return record.id not in self._abandoned
        return not owner_is_dead(record.owner)

    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.ensure_future(self._renew_leases())

    async def _renew_leases(self) -> None:
        interval = max(self.lease_seconds / 3.0, 0.05)
        while self._active:
            await asyncio.sleep(interval)
            for run in list(self._active.values()):
                lease = self.clock() + self.lease_seconds
                try:
                    ok = await self.store.renew(run.id, owner=self.owner, lease_expires_at=lease)
                except DwfError:
                    logger.warning("could not renew the lease of %s", run.id, exc_info=True)
                    continue
                if not ok:
                    logger.warning("execution %s is no longer owned by this process", run.id)
                    continue
                run.record.lease_expires_at = lease  # so checkpoints need not rewrite it
                if not run.record.cancel_requested:
                    # A cancel requested by another process is seen here, then at the next step.
                    current = await self.store.load(run.id)
                    if current is not None and current.cancel_requested:
                        run.record.cancel_requested = True


def _halt_record(halt: Halt) -> dict[str, Any]:
    path = halt.path if isinstance(halt, PropagatedHalt) else ""
    return {
        "path": path,
        "step": path.rsplit("/", 1)[-1].split("[", 1)[0] if path else None,
        "prompt": halt.prompt,
        "data": halt.data,
        "expires_at": halt.expires_at,
    }


def _earliest_expiry(state: Mapping[str, Any]) -> float | None:
    marker = _earliest_timer(state)
    return marker["expires_at"] if marker else None


def _earliest_timer(state: Mapping[str, Any]) -> dict[str, Any] | None:
    best: dict[str, Any] | None = None
    for key, value in state.items():
        if not (key.endswith("|halt") and isinstance(value, dict) and value.get("expires_at")):
            continue
        if best is None or value["expires_at"] < best["expires_at"]:
            best = value
    return best


def _child_result(result: RunResult) -> SubWorkflowResult:
    halt = None
    if result.halt is not None:
        halt = Halt(
            data=result.halt.get("data") or {},
            prompt=result.halt.get("prompt"),
            reenter=True,
            expires_at=result.halt.get("expires_at"),
        )
    return SubWorkflowResult(
        execution_id=result.execution_id,
        status=result.status,
        output=result.output,
        halt=halt,
        error=result.error,
    )


def _sync(coro: Coroutine[Any, Any, T], name: str) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise ConfigurationError(
        f"{name}_sync() cannot be called from a running event loop; use `await engine.{name}(...)`"
    )
