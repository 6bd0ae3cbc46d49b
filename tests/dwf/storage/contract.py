"""The contract every store passes. It uses only the :class:`dwf.storage.base.Store` protocol.

A backend's test module subclasses :class:`StoreContract` and provides a ``store`` fixture that
yields a fresh, empty store and closes it afterwards (closing twice must be harmless).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from typing import Any

import pytest

from dwf.errors import InvalidTransition, LeaseLost, StoreError
from dwf.storage.base import AuditEntry, Checkpoint, ExecutionRecord, Status, Store

OWNER = "worker-a"


def make_record(execution_id: str = "ex-1", **fields: Any) -> ExecutionRecord:
    """A small valid record; ``fields`` override any attribute."""
    values: dict[str, Any] = {
        "id": execution_id,
        "workflow_id": "order",
        "definition_hash": "hash-1",
        "status": Status.PENDING,
        "created_at": 1_000.0,
    }
    values.update(fields)
    return ExecutionRecord(**values)


_ASK = """
id: ask
name: Ask a person for a name
steps:
  - id: question
    type: halt
    reason: What is your name?
    next: greet
  - id: greet
    type: end
    result: {greeting: "Hello, $response.name"}
"""


def check_sync_engine_round_trip(store_url: str, store_type: type[Store]) -> None:
    """An engine on ``store_url`` halts and resumes through the ``*_sync`` wrappers. Each of
    them is its own ``asyncio.run()``, so a store with connections must follow the event loop."""
    from dwf import Engine, load_workflow

    engine = Engine(store_url)
    assert isinstance(engine.store, store_type)
    halted = engine.run_sync(load_workflow(_ASK))
    assert halted.halted
    done = engine.resume_sync(halted.execution_id, response={"name": "Ada"})
    assert (done.status, done.output) == (Status.COMPLETED, {"greeting": "Hello, Ada"})
    entries = asyncio.run(engine.store.entries(halted.execution_id))
    assert [e.action for e in entries] == ["halted", "resumed", "completed"]
    asyncio.run(engine.close())


def make_entry(step_id: str = "s1", **fields: Any) -> AuditEntry:
    values: dict[str, Any] = {
        "execution_id": "ex-1",
        "step_path": f"main/{step_id}",
        "step_id": step_id,
        "step_type": "call",
        "action": "completed",
        "started_at": 10.0,
        "finished_at": 10.5,
    }
    values.update(fields)
    return AuditEntry(**values)


def step(execution_id: str = "ex-1", **fields: Any) -> Checkpoint:
    """A checkpoint by :data:`OWNER` that stays running."""
    values: dict[str, Any] = {
        "execution_id": execution_id,
        "owner": OWNER,
        "status": Status.RUNNING,
        "position": ["main", "s2"],
    }
    values.update(fields)
    return Checkpoint(**values)


def ending(result: Any, execution_id: str = "ex-1", **fields: Any) -> Checkpoint:
    """The checkpoint of an ``end`` step that completes the run with ``result``: its output,
    the ``result`` variable and the execution's output (one object, as the engine gives)."""
    values: dict[str, Any] = {
        "status": Status.COMPLETED,
        "position": [],
        "set_variables": {"result": result},
        "entries": [make_entry("end", execution_id=execution_id, output=result)],
        "output": result,
        "set_output": True,
    }
    values.update(fields)
    return step(execution_id, **values)


async def running(store: Store, execution_id: str = "ex-1", **fields: Any) -> ExecutionRecord:
    """Create an execution and claim it for :data:`OWNER`."""
    created = await store.create(make_record(execution_id, **fields), "definition text")
    claimed = await store.claim(
        execution_id, owner=OWNER, lease_expires_at=2_000.0, expected_version=created.version
    )
    assert claimed is not None
    return claimed


def assert_same_json(actual: Any, expected: Any) -> None:
    """Equal, and of the same JSON types all the way down (True is not 1, 2.0 is not 2)."""
    assert type(actual) is type(expected), (actual, expected)
    if isinstance(expected, dict):
        assert actual.keys() == expected.keys()
        for key in expected:
            assert_same_json(actual[key], expected[key])
    elif isinstance(expected, list):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            assert_same_json(a, e)
    else:
        assert actual == expected


EDGE_VALUES: dict[str, Any] = {
    "unicode": 'héllo wörld 你好 🎉 "quoted" \\ back\nslash\t\u0000',
    "empty": {"dict": {}, "list": [], "str": ""},
    "ints": [0, -1, 2**63, -(2**80), 10**30],
    "floats": [2.0, -0.0, 0.1, 1e300, -2.5e-300, 1.0],
    "bools": [True, False, None],
    "nested": {"a": [{"b": [[[{"c": {"d": [1, "2", 3.0, False]}}]]]}]},
    "keys": {"": 1, "with space": 2, "ü": 3, "1": 4},
}


class StoreContract:
    """Tests every backend must pass; subclasses provide the ``store`` fixture."""

    async def test_the_store_implements_the_protocol(self, store: Store) -> None:
        assert isinstance(store, Store)
        assert isinstance(store.url, str)
        assert store.url

    async def test_create_then_load_returns_every_field(self, store: Store) -> None:
        record = make_record(
            status=Status.HALTED,
            input={"order_id": 7, "items": [{"sku": "a", "qty": 2}]},
            variables={"total": 12.5, "customer": {"name": "Ada"}},
            state={"frame:main": {"index": 3}, "loop:items": 1},
            position=["main", "loop", "1", "charge"],
            output={"done": False},
            halt={"reason": "approval", "prompt": "Ship it?"},
            error={"type": "StepFailed", "message": "boom"},
            parent_id="parent-1",
            parent_step="child_step",
            owner=None,
            deadline=5_000.0,
            wake_at=4_000.0,
            cancel_requested=True,
            version=99,
            created_at=1_234.5,
        )
        created = await store.create(record, "name: order\nsteps: []\n")
        expected = dataclasses.replace(record, version=1, updated_at=1_234.5)
        assert created == expected
        assert await store.load("ex-1") == expected
        assert await store.load_definition("hash-1") == "name: order\nsteps: []\n"

    async def test_create_without_times_uses_the_current_time(self, store: Store) -> None:
        created = await store.create(make_record(created_at=0.0), "d")
        assert created.created_at > 1_600_000_000
        assert created.updated_at == created.created_at
        loaded = await store.load("ex-1")
        assert loaded is not None
        assert loaded.created_at == created.created_at

    async def test_stored_values_are_copies_of_what_callers_hold(self, store: Store) -> None:
        record = make_record(variables={"items": [1, 2]}, input={"a": {"b": 1}})
        created = await store.create(record, "d")
        record.variables["items"].append(3)
        record.input["a"]["b"] = 2
        created.variables["items"].append(4)
        loaded = await store.load("ex-1")
        assert loaded is not None
        loaded.variables["items"].append(5)
        loaded.position.append("x")
        again = await store.load("ex-1")
        assert again is not None
        assert again.variables == {"items": [1, 2]}
        assert again.input == {"a": {"b": 1}}
        assert again.position == []

    async def test_creating_an_existing_id_raises_invalid_transition(self, store: Store) -> None:
        await store.create(make_record(variables={"v": 1}), "d")
        second = make_record(
            workflow_id="other", definition_hash="hash-new", variables={"v": 2}, state={"k": 1}
        )
        with pytest.raises(InvalidTransition, match="ex-1"):
            await store.create(second, "new text")
        loaded = await store.load("ex-1")
        assert loaded is not None
        assert (loaded.workflow_id, loaded.variables, loaded.state) == ("order", {"v": 1}, {})
        assert await store.load_definition("hash-new") is None  # nothing of it was written

    async def test_the_root_position_is_state_like_any_other_key(self, store: Store) -> None:
        # "|pos" (the root frame's position) may be kept apart by a backend; it reads back as
        # any state key does, whatever the checkpoints did to it.
        await running(store, state={"|pos": "a", "k": 1})
        await store.checkpoint(step(set_state={"|pos": "b", "k": 2}))
        loaded = await store.load("ex-1")
        assert loaded is not None and loaded.state == {"|pos": "b", "k": 2}
        await store.checkpoint(step(delete_state=["|pos"]))
        loaded = await store.load("ex-1")
        assert loaded is not None and loaded.state == {"k": 2}
        await store.checkpoint(step(set_state={"|pos": "c"}, delete_state=["|pos", "k"]))
        loaded = await store.load("ex-1")
        assert loaded is not None and loaded.state == {"|pos": "c"}

    async def test_unknown_ids_load_as_none(self, store: Store) -> None:
        assert await store.load("nope") is None
        assert await store.load_definition("nope") is None
        assert await store.entries("nope") == []

    async def test_a_definition_is_stored_once_per_hash(self, store: Store) -> None:
        await store.create(make_record("ex-1"), "first text")
        await store.create(make_record("ex-2"), "second text")
        await store.create(make_record("ex-3", definition_hash="hash-2"), "other")
        assert await store.load_definition("hash-1") == "first text"
        assert await store.load_definition("hash-2") == "other"

    async def test_checkpoint_writes_only_the_named_variables_and_state(self, store: Store) -> None:
        await running(store, variables={"a": 1, "b": 2, "c": 3}, state={"x": 1, "y": 2})
        await store.checkpoint(
            step(
                set_variables={"b": 20, "d": [4]},
                delete_variables=["c", "never-existed"],
                set_state={"z": {"n": 1}},
                delete_state=["x"],
            )
        )
        loaded = await store.load("ex-1")
        assert loaded is not None
        assert loaded.variables == {"a": 1, "b": 20, "d": [4]}
        assert loaded.state == {"y": 2, "z": {"n": 1}}
        assert loaded.position == ["main", "s2"]

    async def test_a_name_both_deleted_and_set_ends_up_set(self, store: Store) -> None:
        await running(store, variables={"a": 1})
        await store.checkpoint(step(set_variables={"a": 2}, delete_variables=["a"]))
        loaded = await store.load("ex-1")
        assert loaded is not None
        assert loaded.variables == {"a": 2}

    async def test_checkpoint_returns_the_incremented_version(self, store: Store) -> None:
        claimed = await running(store)
        first = await store.checkpoint(step())
        second = await store.checkpoint(step())
        assert (first, second) == (claimed.version + 1, claimed.version + 2)
        loaded = await store.load("ex-1")
        assert loaded is not None
        assert loaded.version == second

    async def test_checkpoint_by_another_owner_raises_lease_lost_and_writes_nothing(
        self, store: Store
    ) -> None:
        claimed = await running(store, variables={"a": 1})
        with pytest.raises(LeaseLost, match="worker-a"):
            await store.checkpoint(
                step(owner="worker-b", set_variables={"a": 2}, entries=[make_entry()])
            )
        assert await store.load("ex-1") == claimed
        assert await store.entries("ex-1") == []

    async def test_checkpoint_of_a_missing_or_released_execution_raises_lease_lost(
        self, store: Store
    ) -> None:
        with pytest.raises(LeaseLost):
            await store.checkpoint(step("missing"))
        await store.create(make_record(), "d")  # pending: nobody owns it
        with pytest.raises(LeaseLost):
            await store.checkpoint(step())

    async def test_leaving_running_releases_owner_and_lease(self, store: Store) -> None:
        await running(store)
        await store.checkpoint(step(status=Status.HALTED, lease_expires_at=9_999.0))
        loaded = await store.load("ex-1")
        assert loaded is not None
        assert (loaded.status, loaded.owner, loaded.lease_expires_at) == (Status.HALTED, None, None)
        with pytest.raises(LeaseLost):
            await store.checkpoint(step())

    async def test_a_running_checkpoint_keeps_or_extends_the_lease(self, store: Store) -> None:
        await running(store)
        await store.checkpoint(step())
        loaded = await store.load("ex-1")
        assert loaded is not None
        assert (loaded.owner, loaded.lease_expires_at) == (OWNER, 2_000.0)
        await store.checkpoint(step(lease_expires_at=3_000.0))
        loaded = await store.load("ex-1")
        assert loaded is not None
        assert loaded.lease_expires_at == 3_000.0

    async def test_output_halt_error_and_wake_at_change_only_when_flagged(
        self, store: Store
    ) -> None:
        await running(store, output="old", halt={"h": 1}, error={"e": 1}, wake_at=50.0)
        await store.checkpoint(step(output="ignored", halt=None, error=None, wake_at=None))
        loaded = await store.load("ex-1")
        assert loaded is not None
        assert (loaded.output, loaded.halt, loaded.error, loaded.wake_at) == (
            "old",
            {"h": 1},
            {"e": 1},
            50.0,
        )
        await store.checkpoint(
            step(
                output={"result": [1]},
                set_output=True,
                halt=None,
                set_halt=True,
                error={"type": "X"},
                set_error=True,
                wake_at=None,
                set_wake_at=True,
            )
        )
        loaded = await store.load("ex-1")
        assert loaded is not None
        assert (loaded.output, loaded.halt, loaded.error, loaded.wake_at) == (
            {"result": [1]},
            None,
            {"type": "X"},
            None,
        )

    async def test_entries_are_numbered_in_order_and_round_trip(self, store: Store) -> None:
        await running(store)
        first = [
            make_entry("s1", output=None),
            make_entry("s2", output=False, attempt=3, action="retried"),
        ]
        failed = make_entry(
            "s3", action="failed", output=0, error={"type": "StepFailed", "message": "x"}
        )
        await store.checkpoint(step(entries=first))
        await store.checkpoint(step(entries=[]))
        await store.checkpoint(step(entries=[failed]))
        got = await store.entries("ex-1")
        assert [e.seq for e in got] == [1, 2, 3]
        expected = [*first, failed]
        for seq, (actual, wanted) in enumerate(zip(got, expected, strict=True), start=1):
            assert actual == dataclasses.replace(wanted, seq=seq)
        assert got[1].output is False
        assert got[2].output == 0
        assert got[2].output is not False

    async def test_claim_is_compare_and_set_on_version(self, store: Store) -> None:
        created = await store.create(make_record(), "d")
        assert (
            await store.claim("ex-1", owner=OWNER, lease_expires_at=5.0, expected_version=7) is None
        )
        assert (
            await store.claim("nope", owner=OWNER, lease_expires_at=5.0, expected_version=1) is None
        )
        claimed = await store.claim(
            "ex-1", owner=OWNER, lease_expires_at=5.0, expected_version=created.version
        )
        assert claimed is not None
        assert (claimed.status, claimed.owner, claimed.lease_expires_at) == (
            Status.RUNNING,
            OWNER,
            5.0,
        )
        assert claimed.version == created.version + 1
        assert await store.load("ex-1") == claimed

    async def test_concurrent_claims_of_one_version_have_exactly_one_winner(
        self, store: Store
    ) -> None:
        created = await store.create(make_record(), "d")
        results = await asyncio.gather(
            *(
                store.claim(
                    "ex-1", owner=f"w{i}", lease_expires_at=5.0, expected_version=created.version
                )
                for i in range(5)
            )
        )
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        loaded = await store.load("ex-1")
        assert loaded is not None
        assert loaded.owner == winners[0].owner

    async def test_renew_extends_only_the_owners_lease(self, store: Store) -> None:
        claimed = await running(store)
        assert await store.renew("ex-1", owner="worker-b", lease_expires_at=9.0) is False
        assert await store.renew("nope", owner=OWNER, lease_expires_at=9.0) is False
        assert await store.renew("ex-1", owner=OWNER, lease_expires_at=3_000.0) is True
        loaded = await store.load("ex-1")
        assert loaded is not None
        assert (loaded.lease_expires_at, loaded.version) == (3_000.0, claimed.version)
        await store.checkpoint(step(status=Status.HALTED))
        assert await store.renew("ex-1", owner=OWNER, lease_expires_at=4_000.0) is False

    async def test_set_status_is_compare_and_set_and_releases(self, store: Store) -> None:
        await running(store)
        version = await store.checkpoint(
            step(status=Status.HALTED, error={"old": 1}, set_error=True)
        )
        assert not await store.set_status(
            "ex-1", expected_version=version - 1, status=Status.CANCELLED
        )
        assert not await store.set_status("nope", expected_version=1, status=Status.CANCELLED)
        entry = make_entry("cancel", action="cancelled", output=None)
        error = {"type": "Cancelled", "message": "by user"}
        assert await store.set_status(
            "ex-1", expected_version=version, status=Status.CANCELLED, error=error, entry=entry
        )
        loaded = await store.load("ex-1")
        assert loaded is not None
        assert (loaded.status, loaded.error, loaded.owner, loaded.version) == (
            Status.CANCELLED,
            error,
            None,
            version + 1,
        )
        assert await store.entries("ex-1") == [dataclasses.replace(entry, seq=1)]
        assert await store.set_status("ex-1", expected_version=version + 1, status=Status.PENDING)
        loaded = await store.load("ex-1")
        assert loaded is not None
        assert (loaded.status, loaded.error) == (Status.PENDING, None)

    async def test_request_cancel_sets_the_flag_without_a_new_version(self, store: Store) -> None:
        claimed = await running(store)
        assert await store.request_cancel("ex-1") is True
        assert await store.request_cancel("nope") is False
        loaded = await store.load("ex-1")
        assert loaded is not None
        assert (loaded.cancel_requested, loaded.version) == (True, claimed.version)

    async def test_find_filters_and_lists_newest_first(self, store: Store) -> None:
        await store.create(make_record("a", created_at=1.0), "d")
        await store.create(make_record("b", created_at=2.0, workflow_id="ship"), "d")
        await store.create(make_record("c", created_at=3.0, parent_id="a"), "d")
        await store.create(make_record("d", created_at=3.0, status=Status.HALTED), "d")
        await store.create(make_record("e", created_at=5.0, parent_id="a", workflow_id="ship"), "d")

        async def ids(**filters: Any) -> list[str]:
            return [s.id for s in await store.find(**filters)]

        assert await ids() == ["e", "d", "c", "b", "a"]  # equal times: id descending
        assert await ids(workflow_id="ship") == ["e", "b"]
        assert await ids(status=Status.HALTED) == ["d"]
        assert await ids(parent_id="a") == ["e", "c"]
        assert await ids(workflow_id="order", status=Status.PENDING) == ["c", "a"]
        assert await ids(workflow_id="nope") == []
        assert await ids(limit=2) == ["e", "d"]
        assert await ids(limit=2, offset=2) == ["c", "b"]
        assert await ids(parent_id="a", offset=1) == ["c"]
        summary = (await store.find(status=Status.HALTED))[0]
        assert (summary.workflow_id, summary.version, summary.created_at) == ("order", 1, 3.0)

    async def test_find_due_returns_what_needs_a_worker_oldest_first(self, store: Store) -> None:
        now = 1_000.0
        await running(store, "lease-expired", created_at=5.0)
        await store.renew("lease-expired", owner=OWNER, lease_expires_at=now)
        await running(store, "lease-live", created_at=1.0, deadline=now + 1)
        await store.create(make_record("woken", status=Status.HALTED, wake_at=now - 1), "d")
        await store.create(make_record("sleeping", status=Status.HALTED, wake_at=now + 1), "d")
        await store.create(make_record("late", created_at=2.0, deadline=now - 5), "d")
        await store.create(make_record("done", status=Status.COMPLETED, deadline=1.0), "d")
        await store.create(make_record("failed", status=Status.FAILED, wake_at=1.0), "d")
        due = await store.find_due(now=now)
        assert [s.id for s in due] == ["late", "lease-expired", "woken"]
        assert [s.id for s in await store.find_due(now=now, limit=1)] == ["late"]
        assert await store.find_due(now=0.0) == []

    async def test_delete_removes_the_execution_and_everything_it_owns(self, store: Store) -> None:
        await running(store, variables={"a": 1}, state={"s": 1})
        await store.checkpoint(step(entries=[make_entry()]))
        await store.create(make_record("other"), "d")
        assert await store.delete("ex-1") is True
        assert await store.delete("ex-1") is False
        assert await store.load("ex-1") is None
        assert await store.entries("ex-1") == []
        assert [s.id for s in await store.find()] == ["other"]
        assert await store.load_definition("hash-1") == "definition text"
        await store.create(make_record(), "d")  # the id is free again, with nothing left over
        loaded = await store.load("ex-1")
        assert loaded is not None
        assert (loaded.variables, loaded.state) == ({}, {})

    async def test_json_edge_values_round_trip_with_their_types(self, store: Store) -> None:
        await running(store, input=EDGE_VALUES, variables=EDGE_VALUES)
        await store.checkpoint(
            step(
                set_state=EDGE_VALUES,
                output=EDGE_VALUES,
                set_output=True,
                entries=[make_entry(output=EDGE_VALUES["floats"])],
            )
        )
        loaded = await store.load("ex-1")
        assert loaded is not None
        for value in (loaded.input, loaded.variables, loaded.state, loaded.output):
            assert_same_json(value, EDGE_VALUES)
        assert_same_json((await store.entries("ex-1"))[0].output, EDGE_VALUES["floats"])

    @pytest.mark.parametrize(
        ("bad", "where"),
        [
            (datetime.date(2024, 1, 1), "when"),
            ({"at": {1: "int key"}}, "when.at"),
            ([1, {"x": float("nan")}], "when[1].x"),
            ({"s": {1, 2}}, "when.s"),
        ],
    )
    async def test_non_json_values_raise_store_error_naming_the_key(
        self, store: Store, bad: Any, where: str
    ) -> None:
        claimed = await running(store, variables={"a": 1})
        with pytest.raises(StoreError, match="'when'") as caught:
            await store.checkpoint(
                step(set_variables={"a": 2, "when": bad}, entries=[make_entry()])
            )
        assert where in str(caught.value)
        assert await store.load("ex-1") == claimed
        assert await store.entries("ex-1") == []
        with pytest.raises(StoreError, match="input"):
            await store.create(make_record("ex-2", input={"when": bad}), "d")
        assert await store.load("ex-2") is None

    async def test_a_closed_store_refuses_calls(self, store: Store) -> None:
        await store.create(make_record(), "d")
        await store.close()
        await store.close()
        with pytest.raises(StoreError, match="closed"):
            await store.load("ex-1")
