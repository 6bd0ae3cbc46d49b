"""The guarantees of ARCHITECTURE.md section 3, tested in-process.

A "crash" here is the engine's task being cancelled in the middle of a step: nothing after the
last checkpoint reaches the store, exactly as when the process dies. The SIGKILL version of the
same test, with real processes, is in test_crash_recovery.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import dwf
from dwf.errors import InvalidTransition, LeaseLost
from dwf.storage import open_store
from dwf.storage.base import Checkpoint, Status


class Clock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A service that records every call and can block one step until released."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.block_on: str | None = None
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def work(self, name: str, idempotency_key: str) -> str:
        self.calls.append((name, idempotency_key))
        if name == self.block_on:
            self.entered.set()
            await self.release.wait()
        return f"did {name}"


LINEAR = """
id: linear
name: Linear
steps:
  - {id: a, type: call, service: rec, method: work, input: {name: a}, output: ra, next: b}
  - {id: b, type: call, service: rec, method: work, input: {name: b}, output: rb, next: c}
  - {id: c, type: call, service: rec, method: work, input: {name: c}, output: rc, next: d}
  - {id: d, type: call, service: rec, method: work, input: {name: d}, output: rd, next: end}
  - {id: end, type: end, result: {a: $ra, b: $rb, c: $rc, d: $rd}}
"""

LOOPED = """
id: looped
name: Looped
steps:
  - id: items
    type: loop
    over: [x, y, z]
    do:
      - {id: charge, type: call, service: rec, method: work, input: {name: "$item"}, output: r}
      - {id: note, type: assign, set: {last: $r}}
    output: results
    next: end
  - {id: end, type: end, result: {results: $results, last: $last}}
"""


async def crash_during(engine: dwf.Engine, rec: Recorder, workflow: Any, step: str) -> str:
    """Run until ``step`` is executing, then cancel the run (the "crash")."""
    rec.block_on = step
    task = asyncio.ensure_future(engine.run(workflow))
    await asyncio.wait_for(rec.entered.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    running = await engine.store.find(status=Status.RUNNING)
    assert len(running) == 1
    return running[0].id


async def test_a_crash_mid_step_recovers_from_the_last_checkpoint_and_reruns_only_that_step(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/dwf.db"
    clock = Clock()
    rec = Recorder()
    workflow = dwf.parse_workflow(LINEAR)
    first = dwf.Engine(url, services={"rec": rec}, clock=clock, lease_seconds=30)
    execution_id = await crash_during(first, rec, workflow, "c")
    await first.close()
    assert [name for name, _ in rec.calls] == ["a", "b", "c"]

    clock.now += 31  # the dead owner's lease expires
    rec.block_on = None
    second = dwf.Engine(url, services={"rec": rec}, clock=clock)
    results = await second.recover()
    await second.close()

    assert [r.status for r in results] == ["completed"]
    assert results[0].output == {"a": "did a", "b": "did b", "c": "did c", "d": "did d"}
    names = [name for name, _ in rec.calls]
    assert names == ["a", "b", "c", "c", "d"]  # only the interrupted step ran again
    keys = [key for name, key in rec.calls if name == "c"]
    assert keys[0] == keys[1] == f"{execution_id}:c"  # with the same idempotency key


async def test_recover_leaves_a_live_owners_execution_alone_until_its_lease_expires() -> None:
    clock = Clock()
    rec = Recorder()
    store = open_store("memory://")
    engine = dwf.Engine(store, services={"rec": rec}, clock=clock)
    rec.block_on = "b"
    task = asyncio.ensure_future(engine.run(dwf.parse_workflow(LINEAR)))
    await asyncio.wait_for(rec.entered.wait(), 5)

    other = dwf.Engine(store, services={"rec": rec}, clock=clock)
    assert await other.recover() == []  # lease still valid: nobody steals it

    rec.release.set()
    result = await task
    assert result.status == "completed"
    assert [name for name, _ in rec.calls] == ["a", "b", "c", "d"]


async def test_a_crash_inside_a_loop_iteration_resumes_in_that_iteration() -> None:
    clock = Clock()
    rec = Recorder()
    store = open_store("memory://")
    first = dwf.Engine(store, services={"rec": rec}, clock=clock)
    execution_id = await crash_during(first, rec, dwf.parse_workflow(LOOPED), "y")
    record = await store.load(execution_id)
    assert record is not None
    assert record.state["items|i"] == 1  # iteration 0 is committed, iteration 1 is not

    clock.now += 60
    rec.block_on = None
    second = dwf.Engine(store, services={"rec": rec}, clock=clock)
    [result] = await second.recover(execution_id)
    assert result.status == "completed"
    assert result.output == {
        "results": [{"last": "did x"}, {"last": "did y"}, {"last": "did z"}],
        "last": "did z",
    }
    assert [name for name, _ in rec.calls] == ["x", "y", "y", "z"]
    entries = await store.entries(execution_id)
    completed = [e.step_path for e in entries if e.action == "completed"]
    assert completed.count("items[0]/charge") == 1
    assert completed.count("items[1]/charge") == 1


async def test_a_dead_owner_on_this_machine_is_recovered_without_waiting_for_its_lease() -> None:
    script = "import os; print(os.getpid())"
    proc = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    )
    dead_pid = int(proc.stdout)
    clock = Clock()
    rec = Recorder()
    store = open_store("memory://")
    first = dwf.Engine(store, services={"rec": rec}, clock=clock)
    import socket

    first.owner = f"{socket.gethostname()}:{dead_pid}:deadbeef"
    execution_id = await crash_during(first, rec, dwf.parse_workflow(LINEAR), "b")

    rec.block_on = None
    second = dwf.Engine(store, services={"rec": rec}, clock=clock)  # same time: lease not expired
    [result] = await second.recover()
    assert result.execution_id == execution_id
    assert result.status == "completed"


async def test_an_owner_that_lost_its_lease_cannot_commit_another_step() -> None:
    clock = Clock()
    rec = Recorder()
    store = open_store("memory://")
    first = dwf.Engine(store, services={"rec": rec}, clock=clock)
    rec.block_on = "b"
    task = asyncio.ensure_future(first.run(dwf.parse_workflow(LINEAR)))
    await asyncio.wait_for(rec.entered.wait(), 5)
    execution_id = (await store.find(status=Status.RUNNING))[0].id

    clock.now += 31
    second = dwf.Engine(store, services={"rec": Recorder()}, clock=clock)
    record = await store.load(execution_id)
    assert record is not None
    taken = await store.claim(
        execution_id, owner=second.owner, lease_expires_at=clock.now + 30,
        expected_version=record.version,
    )  # fmt: skip
    assert taken is not None

    rec.release.set()
    result = await task  # the first owner finishes step b but may not record it
    assert result.status == "running"
    entries = await store.entries(execution_id)
    assert [e.step_path for e in entries if e.action == "completed"] == ["a"]
    with pytest.raises(LeaseLost):
        await store.checkpoint(Checkpoint(execution_id, first.owner, Status.RUNNING, ["x"]))


HALTING = """
id: approve_it
name: Approve it
steps:
  - {id: ask, type: approval, prompt: "ok?", next: done}
  - {id: done, type: end, result: {ok: true}}
"""


async def test_of_concurrent_resumes_exactly_one_wins(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/dwf.db"
    engine = dwf.Engine(url)
    halted = await engine.run(dwf.parse_workflow(HALTING))
    assert halted.status == "halted"
    engines = [dwf.Engine(url) for _ in range(5)]
    outcomes = await asyncio.gather(
        *(e.resume(halted.execution_id, approved=True) for e in engines), return_exceptions=True
    )
    wins = [o for o in outcomes if isinstance(o, dwf.RunResult)]
    losses = [o for o in outcomes if isinstance(o, InvalidTransition)]
    assert len(wins) == 1 and wins[0].status == "completed"
    assert len(losses) == 4
    entries = await engine.entries(halted.execution_id)
    assert [e.action for e in entries].count("resumed") == 1
    for e in [engine, *engines]:
        await e.close()


async def test_resume_runs_the_pinned_definition_even_after_the_file_changed(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/dwf.db"
    original = dwf.parse_workflow(HALTING)
    first = dwf.Engine(url)
    halted = await first.run(original)
    await first.close()

    changed = dwf.parse_workflow(HALTING.replace("{ok: true}", "{ok: changed}"))
    assert changed.hash != original.hash
    second = dwf.Engine(url, workflows=[changed])  # a fresh process that knows only the new file
    result = await second.resume(halted.execution_id, approved=True)
    await second.close()
    assert result.output == {"ok": True}
    record = await open_store(url).load(halted.execution_id)
    assert record is not None and record.definition_hash == original.hash


class SizeRecordingStore:
    """Wraps a store and records how many bytes each checkpoint carries."""

    def __init__(self, inner: dwf.Store) -> None:
        self.inner = inner
        self.sizes: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def checkpoint(self, checkpoint: Checkpoint) -> int:
        payload: Mapping[str, Any] = {
            "v": checkpoint.set_variables,
            "s": checkpoint.set_state,
            "o": checkpoint.output,
        }
        self.sizes.append(len(json.dumps(payload)))
        return await self.inner.checkpoint(checkpoint)


async def test_the_per_step_write_does_not_grow_with_the_size_of_the_variables() -> None:
    steps = [
        {"id": f"s{i}", "type": "assign", "set": {f"v{i}": "x" * 1000}, "next": f"s{i + 1}"}
        for i in range(300)
    ]
    steps[-1]["next"] = None
    workflow = dwf.parse_workflow({"id": "grow", "name": "Grow", "steps": steps})
    store = SizeRecordingStore(open_store("memory://"))
    engine = dwf.Engine(store)  # type: ignore[arg-type]
    result = await engine.run(workflow)
    assert result.status == "completed"
    # One write per step; the last step's goes with the completion (and the output).
    assert len(store.sizes) == 300
    step_writes = store.sizes[:-1]
    # Each step writes its own 1 KB variable and a little bookkeeping, never the earlier ones.
    assert max(step_writes) < 1300
    assert max(step_writes) - min(step_writes) < 100
    record = await engine.get(result.execution_id)
    assert len(record.variables) == 300


async def test_a_checkpoint_renews_the_lease_only_once_half_of_it_has_passed() -> None:
    # Writing the lease rewrites an index entry; the renewer extends it every third of its
    # duration, and a checkpoint only when less than half of it is left.
    clock = Clock()
    store = open_store("memory://")
    sent: list[tuple[float, float | None]] = []

    class LeaseRecordingStore(SizeRecordingStore):
        async def checkpoint(self, checkpoint: Checkpoint) -> int:
            if checkpoint.status == Status.RUNNING:
                sent.append((clock.now, checkpoint.lease_expires_at))
            return await self.inner.checkpoint(checkpoint)

    class Ticker:
        async def tick(self) -> None:
            clock.now += 10

    steps = [
        {"id": f"s{i}", "type": "call", "service": "t", "method": "tick", "next": f"s{i + 1}"}
        for i in range(6)
    ]
    steps[-1]["next"] = None
    workflow = dwf.parse_workflow({"id": "slow", "name": "Slow", "steps": steps})
    engine = dwf.Engine(
        LeaseRecordingStore(store),  # type: ignore[arg-type]
        services={"t": Ticker()},
        clock=clock,
        lease_seconds=30,
    )
    result = await engine.run(workflow)
    await engine.close()
    assert result.status == "completed"

    lease = 1_000_000.0 + 30  # taken when the execution was created
    for now, new in sent:
        assert (new is not None) == (lease - now <= 15)
        if new is not None:
            assert new == now + 30
            lease = new
    # The sixth step's checkpoint is the completion's, which ends the lease.
    assert [new is None for _, new in sent] == [True, False, True, False, True]


async def test_idempotency_keys_name_the_iteration_and_survive_retries() -> None:
    attempts: dict[str, list[str]] = {}

    class Flaky:
        def charge(self, item: str, idempotency_key: str) -> str:
            attempts.setdefault(item, []).append(idempotency_key)
            if len(attempts[item]) < 2:
                raise RuntimeError("try again")
            return item

    workflow = dwf.parse_workflow(
        """
id: keys
name: Keys
steps:
  - id: each
    type: loop
    over: [p, q]
    do:
      - {id: pay, type: call, service: Flaky, method: charge, input: {item: $item},
         retries: 1, retry_delay: 0}
"""
    )
    engine = dwf.Engine("memory://", services={"Flaky": Flaky})
    result = await engine.run(workflow)
    assert result.status == "completed"
    prefix = result.execution_id
    assert attempts == {
        "p": [f"{prefix}:each[0]/pay"] * 2,
        "q": [f"{prefix}:each[1]/pay"] * 2,
    }


async def test_cancel_stops_a_halted_execution_for_good_and_a_running_one_at_its_next_step() -> (
    None
):
    store = open_store("memory://")
    engine = dwf.Engine(store)
    halted = await engine.run(dwf.parse_workflow(HALTING))
    cancelled = await engine.cancel(halted.execution_id)
    assert cancelled.status == "cancelled"
    with pytest.raises(InvalidTransition, match="cancelled"):
        await engine.resume(halted.execution_id, approved=True)

    rec = Recorder()
    rec.block_on = "b"
    runner = dwf.Engine(store, services={"rec": rec})
    task = asyncio.ensure_future(runner.run(dwf.parse_workflow(LINEAR)))
    await asyncio.wait_for(rec.entered.wait(), 5)
    execution_id = (await store.find(status=Status.RUNNING))[0].id
    await runner.cancel(execution_id)
    rec.release.set()
    result = await task
    assert result.status == "cancelled"
    assert [name for name, _ in rec.calls] == ["a", "b"]  # b finished; c never started
    entries = await store.entries(execution_id)
    assert [e.step_path for e in entries if e.action == "completed"] == ["a", "b"]


async def test_recovering_without_the_services_leaves_the_execution_untouched() -> None:
    clock = Clock()
    rec = Recorder()
    store = open_store("memory://")
    first = dwf.Engine(store, services={"rec": rec}, clock=clock)
    execution_id = await crash_during(first, rec, dwf.parse_workflow(LINEAR), "b")
    before = await store.load(execution_id)
    clock.now += 60

    forgetful = dwf.Engine(store, clock=clock)  # no services registered
    assert await forgetful.recover() == []
    with pytest.raises(dwf.ConfigurationError, match="not registered here: rec"):
        await forgetful.recover(execution_id)
    after = await store.load(execution_id)
    assert after is not None and before is not None
    assert (after.status, after.version) == (before.status, before.version)

    rec.block_on = None
    [result] = await dwf.Engine(store, services={"rec": rec}, clock=clock).recover()
    assert result.status == "completed"


class FailingStore(SizeRecordingStore):
    """Fails the checkpoint that carries a given state key (the store went away)."""

    def __init__(self, inner: dwf.Store, fail_on: str) -> None:
        super().__init__(inner)
        self.fail_on = fail_on

    async def checkpoint(self, checkpoint: Checkpoint) -> int:
        if self.fail_on in checkpoint.set_state:
            raise dwf.StoreError("the database went away")
        return await super().checkpoint(checkpoint)


async def test_a_store_failure_inside_a_step_is_not_routed_to_on_error() -> None:
    workflow = dwf.parse_workflow(
        """
id: saves
name: Saves
steps:
  - id: each
    type: loop
    over: [1, 2, 3]
    do:
      - {id: note, type: assign, set: {x: $item}}
    on_error: handler
    next: done
  - {id: handler, type: assign, set: {handled: true}, next: done}
  - {id: done, type: end}
"""
    )
    inner = open_store("memory://")
    engine = dwf.Engine(FailingStore(inner, "each|r1"))  # type: ignore[arg-type]
    with pytest.raises(dwf.StoreError, match="left 'running'"):
        await engine.run(workflow)
    [summary] = await inner.find()
    record = await inner.load(summary.id)
    assert record is not None
    assert record.status == "running"  # recoverable from its last checkpoint
    assert "handled" not in record.variables
    assert record.state["each|i"] == 1


class CheckpointRecorder(SizeRecordingStore):
    """Wraps a store; records each checkpoint and, in one timeline with them, the events."""

    def __init__(self, inner: dwf.Store) -> None:
        super().__init__(inner)
        self.written: list[Checkpoint] = []
        self.events: list[tuple[str, str | None]] = []

    def on_event(self, event: dwf.Event) -> None:
        self.events.append((event.type, event.step_id))

    async def checkpoint(self, checkpoint: Checkpoint) -> int:
        self.written.append(checkpoint)
        self.events.append(("checkpoint", checkpoint.status))
        return await self.inner.checkpoint(checkpoint)


async def test_the_last_step_is_committed_with_the_completion_and_announced_after_it() -> None:
    # Nothing runs between the workflow's last step and its completion, so they are one
    # transaction: a run of n steps writes its creation and n checkpoints, like n + 1 commits.
    workflow = dwf.parse_workflow(
        {
            "id": "three",
            "name": "Three",
            "steps": [
                {"id": "a", "type": "assign", "set": {"x": 1}, "next": "b"},
                {"id": "b", "type": "assign", "set": {"y": 2}, "next": "end"},
                {"id": "end", "type": "end", "result": {"sum": 3}},
            ],
        }
    )
    store = CheckpointRecorder(open_store("memory://"))
    engine = dwf.Engine(store, on_event=store.on_event)  # type: ignore[arg-type]
    written, events = store.written, store.events
    result = await engine.run(workflow)
    assert result.status == "completed" and result.output == {"sum": 3}
    assert [c.status for c in written] == [Status.RUNNING, Status.RUNNING, Status.COMPLETED]
    last = written[-1]
    assert [(e.step_id, e.action) for e in last.entries] == [("end", "completed")]
    assert last.output == {"sum": 3} and last.set_variables == {"result": {"sum": 3}}
    assert events[-4:] == [
        ("step.started", "end"),
        ("checkpoint", Status.COMPLETED),
        ("step.completed", "end"),
        ("workflow.completed", None),
    ]
    entries = await engine.entries(result.execution_id)
    assert [(e.step_id, e.action) for e in entries] == [
        ("a", "completed"),
        ("b", "completed"),
        ("end", "completed"),
    ]
    await engine.close()


async def test_a_halt_is_committed_with_its_step_and_resumes_where_it_stopped() -> None:
    workflow = dwf.parse_workflow(
        {
            "id": "ask",
            "name": "Ask",
            "steps": [
                {"id": "a", "type": "assign", "set": {"x": 1}, "next": "ask"},
                {"id": "ask", "type": "halt", "reason": "name?", "next": "end"},
                {"id": "end", "type": "end", "result": {"name": "$response"}},
            ],
        }
    )
    store = CheckpointRecorder(open_store("memory://"))
    engine = dwf.Engine(store, on_event=store.on_event)  # type: ignore[arg-type]
    written, events = store.written, store.events
    halted = await engine.run(workflow)
    assert halted.status == "halted"
    assert [c.status for c in written] == [Status.RUNNING, Status.HALTED]
    assert [(e.step_id, e.action) for e in written[-1].entries] == [("ask", "halted")]
    assert events[-3:] == [
        ("checkpoint", Status.HALTED),
        ("step.halted", "ask"),
        ("workflow.halted", None),
    ]
    done = await engine.resume(halted.execution_id, response="Ada")
    assert (done.status, done.output) == ("completed", {"name": "Ada"})
    entries = await engine.entries(halted.execution_id)
    assert [(e.step_id, e.action) for e in entries] == [
        ("a", "completed"),
        ("ask", "halted"),
        ("ask", "resumed"),
        ("end", "completed"),
    ]
    await engine.close()
