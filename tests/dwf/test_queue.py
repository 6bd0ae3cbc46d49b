"""The Queue runner with the inline adapter, the jobs a worker performs, and ``Engine.tick``.

In-process and fast: the Celery adapter with real workers is in test_queue_celery.py; kills,
database restarts and timers with real processes are in test_faults_*.py.
"""

from __future__ import annotations

import asyncio
import textwrap
from typing import Any

import pytest

import dwf
from dwf.errors import ConfigurationError, InvalidTransition, StoreError
from dwf.runners.inline import InlineAdapter
from dwf.runners.jobs import Job, perform, resumes_committed
from dwf.runners.queue import QueueRunner
from dwf.storage import Checkpoint, open_store
from dwf.storage.base import Status


class Clock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class Gate:
    """A service whose ``pass_`` blocks while the gate is closed; it counts the calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.entered = asyncio.Event()
        self.open = asyncio.Event()
        self.open.set()

    async def pass_(self, name: str) -> str:
        self.calls.append(name)
        self.entered.set()
        await self.open.wait()
        return name


def workflow(text: str) -> dwf.WorkflowDefinition:
    return dwf.parse_workflow(textwrap.dedent(text))


THREE = workflow("""
    id: three
    name: Three steps
    inputs:
      who: {type: string, default: world}
    steps:
      - {id: a, type: call, service: gate, method: pass_, input: {name: a}, next: b}
      - {id: b, type: call, service: gate, method: pass_, input: {name: b}, next: c}
      - {id: c, type: call, service: gate, method: pass_, input: {name: c}, next: done}
      - {id: done, type: end, result: {hello: $input.who}}
    """)

TWO_APPROVALS = workflow("""
    id: two_approvals
    name: Two approvals
    steps:
      - {id: first, type: approval, prompt: First?, output: d1, next: second}
      - {id: second, type: approval, prompt: Second?, output: d2, next: done, on_reject: done}
      - {id: done, type: end, result: {first: $d1.decision, second: $d2.decision}}
    """)

EXPIRING = workflow("""
    id: expiring
    name: Expiring approval
    steps:
      - {id: ask, type: approval, prompt: Ok?, timeout: 60, on_timeout: expired, next: ok}
      - {id: ok, type: end, result: approved}
      - {id: expired, type: end, result: expired}
    """)

WITH_DEADLINE = workflow("""
    id: with_deadline
    name: With a deadline
    timeout: 10
    steps:
      - {id: a, type: call, service: gate, method: pass_, input: {name: a}, next: done}
      - {id: done, type: end, result: ok}
    """)


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def engine(gate: Gate, clock: Clock) -> Any:
    engine = dwf.Engine("memory://", services={"gate": gate}, clock=clock)
    yield engine
    await engine.close()


@pytest.fixture
async def runner(engine: dwf.Engine) -> Any:
    runner = QueueRunner(engine, InlineAdapter())
    yield runner
    await runner.aclose()


async def test_enqueue_run_returns_the_id_of_a_pending_execution_at_once(
    runner: QueueRunner, gate: Gate
) -> None:
    gate.open.clear()
    execution_id = await runner.enqueue_run(THREE, {"who": "queue"})

    assert (await runner.status(execution_id)).status == "pending"
    await asyncio.wait_for(gate.entered.wait(), 5)
    assert (await runner.status(execution_id)).status == "running"
    gate.open.set()
    result = await runner.wait(execution_id, timeout=5)
    assert result.status == "completed"
    assert result.output == {"hello": "queue"}
    assert gate.calls == ["a", "b", "c"]


async def test_invalid_input_is_rejected_before_anything_is_queued(
    runner: QueueRunner, engine: dwf.Engine
) -> None:
    with pytest.raises(dwf.InputValidationError, match="who"):
        await runner.enqueue_run(THREE, {"who": 42})
    assert await engine.store.find() == []


async def test_wait_gives_up_after_its_timeout_and_the_execution_goes_on(
    runner: QueueRunner, gate: Gate
) -> None:
    gate.open.clear()
    execution_id = await runner.enqueue_run(THREE)
    with pytest.raises(TimeoutError, match=f"{execution_id} is still"):
        await runner.wait(execution_id, timeout=0.05)
    gate.open.set()
    assert (await runner.wait(execution_id, timeout=5)).status == "completed"


async def test_a_queued_resume_answers_the_halt_and_wait_waits_for_it(
    runner: QueueRunner,
) -> None:
    execution_id = await runner.enqueue_run(TWO_APPROVALS)
    assert (await runner.wait(execution_id, timeout=5)).status == "halted"

    await runner.enqueue_resume(execution_id, approved=True, by="alice")
    # Still halted at `first` until the job runs; wait() waits for the answer, not the halt.
    halted_again = await runner.wait(execution_id, timeout=5)
    assert halted_again.status == "halted"
    assert halted_again.halt is not None and halted_again.halt["step"] == "second"

    await runner.enqueue_resume(execution_id, approved=False)
    done = await runner.wait(execution_id, timeout=5)
    assert done.status == "completed"
    assert done.output == {"first": "approved", "second": "rejected"}


async def test_only_a_halted_root_execution_can_be_resumed_through_the_queue(
    runner: QueueRunner, gate: Gate
) -> None:
    gate.open.clear()
    execution_id = await runner.enqueue_run(THREE)
    with pytest.raises(InvalidTransition, match="only halted executions"):
        await runner.enqueue_resume(execution_id, approved=True)
    gate.open.set()
    await runner.wait(execution_id, timeout=5)
    halted = await runner.enqueue_run(TWO_APPROVALS)
    await runner.wait(halted, timeout=5)
    with pytest.raises(InvalidTransition, match="say how to resume"):
        await runner.enqueue_resume(halted)


async def test_a_resume_job_delivered_twice_answers_only_the_halt_it_was_queued_for(
    engine: dwf.Engine,
) -> None:
    halted = await engine.run(TWO_APPROVALS)
    job = Job("resume", halted.execution_id, approved=True, resumes_seen=0)

    first = await perform(engine, job)
    again = await perform(engine, job)  # the broker delivered it once more

    assert first.status == "done"
    assert first.result is not None and first.result.status == "halted"
    assert again.status == "skipped"
    assert "answered already" in again.reason
    record = await engine.get(halted.execution_id)
    assert record.status == Status.HALTED
    assert record.halt is not None and record.halt["step"] == "second"  # not answered by it


async def test_a_resume_whose_worker_died_before_its_first_checkpoint_applies_when_redelivered(
    gate: Gate, clock: Clock
) -> None:
    store = open_store("memory://")
    first = dwf.Engine(store, services={"gate": gate}, clock=clock)
    halted = await first.run(TWO_APPROVALS)
    token = await resumes_committed(first, halted.execution_id)
    # The first delivery claimed the execution, then its worker died: nothing committed.
    record = await store.load(halted.execution_id)
    assert record is not None
    await store.claim(
        halted.execution_id, owner="elsewhere:1:dead", lease_expires_at=clock.now + 30,
        expected_version=record.version,
    )  # fmt: skip
    clock.now += 31  # its lease expires

    worker = dwf.Engine(store, services={"gate": gate}, clock=clock)
    job = Job("resume", halted.execution_id, approved=True, resumes_seen=token)
    outcome = await perform(worker, job)

    assert outcome.status == "done"
    assert outcome.result is not None and outcome.result.status == "halted"
    record = await store.load(halted.execution_id)
    assert record is not None and record.halt is not None
    assert record.halt["step"] == "second"  # the first approval was answered, once
    actions = [e.action for e in await store.entries(halted.execution_id)]
    assert actions.count("resumed") == 1


async def test_a_resume_job_waits_while_a_live_process_runs_the_execution(
    engine: dwf.Engine, gate: Gate
) -> None:
    gate.open.clear()
    task = asyncio.ensure_future(engine.run(THREE))
    await asyncio.wait_for(gate.entered.wait(), 5)
    (running,) = await engine.store.find(status=Status.RUNNING)
    other = dwf.Engine(engine.store, services={"gate": gate}, clock=engine.clock)

    outcome = await perform(other, Job("resume", running.id, approved=True, resumes_seen=0))

    assert outcome.status == "retry"
    gate.open.set()
    await task


async def test_a_run_job_for_an_execution_a_live_process_owns_does_nothing(
    engine: dwf.Engine, gate: Gate
) -> None:
    gate.open.clear()
    task = asyncio.ensure_future(engine.run(THREE))
    await asyncio.wait_for(gate.entered.wait(), 5)
    (running,) = await engine.store.find(status=Status.RUNNING)
    other = dwf.Engine(engine.store, services={"gate": gate}, clock=engine.clock)

    outcome = await perform(other, Job.run(running.id))  # a redelivered message

    assert outcome.status == "skipped"
    assert "running in a live process" in outcome.reason
    gate.open.set()
    assert (await task).status == "completed"
    assert gate.calls == ["a", "b", "c"]
    finished = await perform(other, Job.run(running.id))
    assert (finished.status, finished.reason) == ("skipped", f"execution {running.id} is completed")


async def test_a_run_job_for_an_execution_whose_owner_died_recovers_it(
    gate: Gate, clock: Clock
) -> None:
    store = open_store("memory://")
    dying = dwf.Engine(store, services={"gate": gate}, clock=clock)
    gate.open.clear()
    task = asyncio.ensure_future(dying.run(THREE))
    await asyncio.wait_for(gate.entered.wait(), 5)
    task.cancel()  # the process "dies" inside step a
    with pytest.raises(asyncio.CancelledError):
        await task
    (running,) = await store.find(status=Status.RUNNING)
    clock.now += 31
    gate.open.set()

    worker = dwf.Engine(store, services={"gate": gate}, clock=clock)
    outcome = await perform(worker, Job.run(running.id))

    assert outcome.status == "done"
    assert outcome.result is not None and outcome.result.status == "completed"
    assert gate.calls == ["a", "a", "b", "c"]  # only the interrupted step ran again


async def test_a_job_for_a_deleted_execution_is_skipped(engine: dwf.Engine) -> None:
    outcome = await perform(engine, Job.run("no-such-execution"))
    assert outcome.status == "skipped"
    assert "does not exist" in outcome.reason


async def test_cancel_of_a_queued_execution_wins_over_its_job(engine: dwf.Engine) -> None:
    class Parked:
        """An adapter that keeps jobs, as a broker does until a worker takes them."""

        in_process = False

        def __init__(self) -> None:
            self.jobs: list[Job] = []

        async def submit(self, engine: dwf.Engine, job: Job) -> None:
            self.jobs.append(job)

        async def aclose(self) -> None:
            return None

    parked = Parked()
    runner = QueueRunner(engine, parked)
    execution_id = await runner.enqueue_run(THREE)

    cancelled = await runner.cancel(execution_id)
    outcome = await perform(engine, parked.jobs[0])  # the worker gets the job later

    assert cancelled.status == "cancelled"
    assert outcome.status == "skipped"
    assert (await runner.status(execution_id)).status == "cancelled"


async def test_cancel_stops_a_queued_running_execution_at_its_next_step(
    runner: QueueRunner, gate: Gate
) -> None:
    gate.open.clear()
    execution_id = await runner.enqueue_run(THREE)
    await asyncio.wait_for(gate.entered.wait(), 5)

    await runner.cancel(execution_id)
    gate.open.set()
    result = await runner.wait(execution_id, timeout=5)

    assert result.status == "cancelled"
    assert gate.calls == ["a"]


async def test_a_job_whose_submit_fails_leaves_a_cancelled_execution_and_an_error(
    engine: dwf.Engine,
) -> None:
    class Down:
        in_process = False

        async def submit(self, engine: dwf.Engine, job: Job) -> None:
            raise ConnectionError("broker unreachable")

        async def aclose(self) -> None:
            return None

    runner = QueueRunner(engine, Down())
    with pytest.raises(dwf.DwfError, match=r"could not queue execution .* broker unreachable"):
        await runner.enqueue_run(THREE)
    (summary,) = await engine.store.find()
    assert summary.status == Status.CANCELLED


class FlakyStore:
    """A store whose reads fail ``failures`` times, like a database that is restarting."""

    def __init__(self, inner: Any, failures: int) -> None:
        self._inner = inner
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def load(self, execution_id: str) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise StoreError("lost the connection to the store (test)")
        return await self._inner.load(execution_id)


async def test_the_inline_adapter_retries_a_job_while_the_store_is_down(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore(open_store("memory://"), failures=0)
    engine = dwf.Engine(store, services={"gate": gate})  # type: ignore[arg-type]
    runner = QueueRunner(engine, InlineAdapter(retry_delay=0.001))
    execution_id = await engine.start(THREE)
    store.failures = 3

    await runner.adapter.submit(engine, Job.run(execution_id))
    await runner.adapter.join()  # type: ignore[attr-defined]

    assert (await runner.status(execution_id)).status == "completed"
    retries = [r for r in caplog.records if "the store failed" in r.getMessage()]
    assert len(retries) == 3


class CommitFailsOnce:
    """A store whose checkpoint of one step fails once, as when the database restarts."""

    def __init__(self, inner: Any, state_key: str) -> None:
        self._inner = inner
        self._key = state_key
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def checkpoint(self, checkpoint: Checkpoint) -> int:
        if not self.failed and any(e.step_path == self._key for e in checkpoint.entries):
            self.failed = True
            raise StoreError("lost the connection to the store (test)")
        result: int = await self._inner.checkpoint(checkpoint)
        return result


async def test_an_execution_left_by_a_store_error_is_taken_back_at_once_by_its_engine(
    gate: Gate,
) -> None:
    store = CommitFailsOnce(open_store("memory://"), "b")
    engine = dwf.Engine(store, services={"gate": gate})  # type: ignore[arg-type]
    execution_id = await engine.start(THREE)

    with pytest.raises(StoreError):
        await engine.continue_(execution_id)
    record = await engine.get(execution_id)
    assert (record.status, record.owner) == (Status.RUNNING, engine.owner)  # lease still held
    outcome = await perform(engine, Job.run(execution_id))  # the retry, right away

    assert outcome.result is not None and outcome.result.status == "completed"
    assert gate.calls == ["a", "b", "b", "c"]
    entries = await engine.entries(execution_id)
    assert [e.step_path for e in entries if e.action == "completed"] == ["a", "b", "c", "done"]


async def test_another_engine_waits_for_the_lease_of_an_execution_left_by_a_store_error(
    gate: Gate,
) -> None:
    store = CommitFailsOnce(open_store("memory://"), "b")
    engine = dwf.Engine(store, services={"gate": gate})  # type: ignore[arg-type]
    execution_id = await engine.start(THREE)
    with pytest.raises(StoreError):
        await engine.continue_(execution_id)

    other = dwf.Engine(store, services={"gate": gate})  # type: ignore[arg-type]
    assert await other.recover() == []  # the owner process lives and its lease holds


async def test_tick_fails_pending_running_and_halted_executions_past_their_deadline(
    engine: dwf.Engine, gate: Gate, clock: Clock
) -> None:
    pending = await engine.start(WITH_DEADLINE)
    halted_wf = workflow("""
        id: halted_deadline
        name: Halted with a deadline
        timeout: 10
        steps:
          - {id: ask, type: approval, prompt: Ok?, next: done}
          - {id: done, type: end}
        """)
    halted = (await engine.run(halted_wf)).execution_id
    gate.open.clear()
    task = asyncio.ensure_future(engine.run(WITH_DEADLINE))
    await asyncio.wait_for(gate.entered.wait(), 5)
    task.cancel()  # its process dies while step a runs
    with pytest.raises(asyncio.CancelledError):
        await task
    (running,) = await engine.store.find(status=Status.RUNNING)

    clock.now += 31  # past the deadlines, and past the dead owner's lease
    other = dwf.Engine(engine.store, services={"gate": gate}, clock=clock)
    results = {r.execution_id: r for r in await other.tick()}

    assert set(results) == {pending, halted, running.id}
    for result in results.values():
        assert result.status == "failed"
        assert result.error is not None and result.error["type"] == "WorkflowTimeout"


async def test_tick_fires_an_approval_timeout_without_any_resume(
    engine: dwf.Engine, clock: Clock
) -> None:
    halted = await engine.run(EXPIRING)
    assert await engine.tick() == []  # not yet
    clock.now += 61
    (result,) = await engine.tick()
    assert (result.execution_id, result.status, result.output) == (
        halted.execution_id, "completed", "expired",
    )  # fmt: skip
    actions = [e.action for e in await engine.entries(halted.execution_id)]
    assert "timed_out" in actions


async def test_tick_starts_old_pending_executions_only_when_asked(
    engine: dwf.Engine, clock: Clock
) -> None:
    old = await engine.start(THREE)
    clock.now += 10
    young = await engine.start(THREE)

    assert await engine.tick() == []
    (result,) = await engine.tick(pending_after=5)

    assert (result.execution_id, result.status) == (old, "completed")
    assert (await engine.get(young)).status == Status.PENDING


async def test_resume_with_an_expected_version_refuses_a_changed_execution(
    engine: dwf.Engine,
) -> None:
    halted = await engine.run(TWO_APPROVALS)
    version = (await engine.get(halted.execution_id)).version
    await engine.resume(halted.execution_id, approved=True)
    with pytest.raises(InvalidTransition, match="changed since this resume was prepared"):
        await engine.resume(halted.execution_id, approved=True, expected_version=version)


def test_the_sync_wrappers_refuse_the_inline_adapter() -> None:
    runner = QueueRunner(dwf.Engine("memory://"))
    with pytest.raises(ConfigurationError, match=r"await runner\.enqueue_run"):
        runner.enqueue_run_sync(THREE)
    with pytest.raises(ConfigurationError, match=r"await runner\.wait"):
        runner.wait_sync("x")


async def test_the_sync_wrappers_refuse_to_run_inside_an_event_loop(runner: QueueRunner) -> None:
    with pytest.raises(ConfigurationError, match="running event loop"):
        runner.status_sync("x")


async def test_a_queued_execution_whose_job_was_lost_is_started_by_recover_after_start_within(
    engine: dwf.Engine, clock: Clock
) -> None:
    class Lost:
        in_process = False

        async def submit(self, engine: dwf.Engine, job: Job) -> None:
            return None  # the broker dropped it

        async def aclose(self) -> None:
            return None

    runner = QueueRunner(engine, Lost(), start_within=60)
    execution_id = await runner.enqueue_run(THREE)
    assert await engine.recover() == []
    clock.now += 61

    (result,) = await engine.recover()

    assert (result.execution_id, result.status) == (execution_id, "completed")
    assert (await engine.get(execution_id)).wake_at is None
