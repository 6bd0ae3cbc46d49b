"""The Redis store against a real server: the contract, plus persistence, concurrency, retention
(TTL), index hygiene, connection failures and URLs.

A throwaway redis-server is started once per test run (see ``servers.py``); each test gets a key
prefix of its own. Without ``redis-server`` these tests are skipped with a message saying what to
install.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

pytest.importorskip("redis", reason='the Redis store needs: pip install "dwf[redis]"')

import redis.asyncio as aioredis
from contract import (
    StoreContract,
    check_sync_engine_round_trip,
    make_entry,
    make_record,
    running,
    step,
)
from servers import free_port, redis_server, with_options

from dwf.errors import ConfigurationError, StoreError
from dwf.storage import Store, open_store
from dwf.storage.base import Status
from dwf.storage.redis import RedisStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of the session's throwaway Redis server."""
    with redis_server() as url:
        yield url


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client, to look at the keys as another program would."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(raw: aioredis.Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    name = f"t{uuid.uuid4().hex[:12]}"
    yield name
    keys = [key async for key in raw.scan_iter(match=f"{name}:*")]
    if keys:
        await raw.delete(*keys)


@pytest.fixture
def store_url(redis_url: str, prefix: str) -> str:
    return with_options(redis_url, prefix=prefix)


class TestRedisStore(StoreContract):
    @pytest.fixture
    async def store(self, store_url: str) -> AsyncIterator[Store]:
        store = RedisStore(store_url)
        yield store
        await store.close()


class TestRedisStoreWithRetention(StoreContract):
    """The whole contract holds with a TTL too (the contract never waits for it)."""

    @pytest.fixture
    async def store(self, store_url: str) -> AsyncIterator[Store]:
        store = RedisStore(with_options(store_url, ttl="1h"))
        yield store
        await store.close()


async def test_everything_survives_a_new_store_instance(store_url: str) -> None:
    store = RedisStore(store_url)
    await running(store, variables={"a": [1, 2.0]}, state={"k": "v"})
    await store.checkpoint(step(entries=[make_entry()], output={"x": 1}, set_output=True))
    before, entries = await store.load("ex-1"), await store.entries("ex-1")
    await store.close()

    reopened = open_store(store_url)
    assert isinstance(reopened, RedisStore)
    assert await reopened.load("ex-1") == before
    assert await reopened.entries("ex-1") == entries
    assert await reopened.load_definition("hash-1") == "definition text"
    await reopened.close()


async def test_two_stores_race_claims_with_one_winner(store_url: str) -> None:
    first, second = RedisStore(store_url), RedisStore(store_url)
    for n in range(5):
        created = await first.create(make_record(f"ex-{n}"), "d")
        results = await asyncio.gather(
            first.claim(f"ex-{n}", owner="first", lease_expires_at=9.0, expected_version=1),
            second.claim(f"ex-{n}", owner="second", lease_expires_at=9.0, expected_version=1),
        )
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        assert winners[0].version == created.version + 1
        assert await second.load(f"ex-{n}") == winners[0]
    await first.close()
    await second.close()


async def test_a_checkpoint_after_1000_large_variables_sends_only_the_changes(
    store_url: str, raw: aioredis.Redis
) -> None:
    store = RedisStore(store_url)
    many = {f"v{i}": "x" * 1000 for i in range(1000)}  # about 1 MB of state
    await running(store, variables=many, state=dict(many))
    await store.checkpoint(step())  # the scripts are loaded now

    async def traffic() -> tuple[int, int]:
        stats = await raw.info("stats")
        return int(stats["total_net_input_bytes"]), int(stats["total_net_output_bytes"])

    before = await traffic()
    await store.checkpoint(
        step(set_variables={"v1": "changed"}, delete_variables=["v2"], set_state={"v3": 0})
    )
    after = await traffic()
    # Both directions stay far below the size of the state (INFO itself is counted too).
    assert after[0] - before[0] < 2_000
    assert after[1] - before[1] < 5_000
    loaded = await store.load("ex-1")
    assert loaded is not None
    assert (len(loaded.variables), loaded.variables["v1"]) == (999, "changed")
    await store.close()


async def test_ttl_applies_to_completed_but_never_to_halted_or_running_executions(
    store_url: str, prefix: str, raw: aioredis.Redis
) -> None:
    store = RedisStore(with_options(store_url, ttl="1h"))
    for eid in ("done", "halted", "busy"):
        await running(store, eid, variables={"v": 1}, state={"s": 1})
        await store.checkpoint(step(eid, entries=[make_entry()]))
    await store.checkpoint(step("done", status=Status.COMPLETED))
    await store.checkpoint(step("halted", status=Status.HALTED))

    async def ttls(eid: str) -> list[int]:
        kinds = ("exec", "vars", "state", "entries")
        return [await raw.pttl(f"{prefix}:{kind}:{eid}") for kind in kinds]

    assert all(0 < left <= 3_600_000 for left in await ttls("done"))
    assert await ttls("halted") == [-1, -1, -1, -1]
    assert await ttls("busy") == [-1, -1, -1, -1]

    # Leaving a terminal status (a cancelled execution set back to pending) drops the TTL.
    loaded = await store.load("done")
    assert loaded is not None
    assert await store.set_status("done", expected_version=loaded.version, status=Status.PENDING)
    assert await ttls("done") == [-1, -1, -1, -1]
    await store.close()


async def test_indexes_do_not_keep_executions_that_expired(
    store_url: str, prefix: str, raw: aioredis.Redis
) -> None:
    store = RedisStore(with_options(store_url, ttl="200ms"))
    await running(store, "short", workflow_id="ship", parent_id="p")
    await store.checkpoint(step("short", status=Status.COMPLETED))
    await running(store, "kept", workflow_id="ship", parent_id="p")
    await store.checkpoint(step("kept", status=Status.HALTED))
    assert {s.id for s in await store.find(workflow_id="ship")} == {"short", "kept"}

    give_up = time.monotonic() + 10
    while await raw.exists(f"{prefix}:exec:short"):  # Redis drops the keys after 200 ms
        assert time.monotonic() < give_up, "Redis did not expire the execution"
        await asyncio.sleep(0.05)
    assert [s.id for s in await store.find(workflow_id="ship")] == ["kept"]
    indexes = [
        key async for key in raw.scan_iter(match=f"{prefix}:*") if await raw.type(key) == "zset"
    ]
    for key in indexes:
        assert await raw.zscore(key, "short") is None, key
    assert await raw.hlen(f"{prefix}:expiring-indexes") == 0
    assert await store.load("short") is None
    assert await store.load("kept") is not None
    # The id is free again, with nothing left over.
    created = await store.create(make_record("short"), "d")
    assert (created.variables, await store.entries("short")) == ({}, [])
    await store.close()


async def test_indexes_follow_status_changes_and_deletes(
    store_url: str, prefix: str, raw: aioredis.Redis
) -> None:
    store = RedisStore(store_url)
    await running(store, workflow_id="ship", parent_id="p", wake_at=5.0, deadline=6.0)
    assert await raw.zscore(f"{prefix}:by-status:running", "ex-1") is not None
    await store.checkpoint(step(status=Status.COMPLETED))
    assert await raw.zscore(f"{prefix}:by-status:running", "ex-1") is None
    assert await raw.zscore(f"{prefix}:by-status-workflow:completed:ship", "ex-1") is not None
    for due in ("due-lease", "due-wake", "due-deadline"):
        assert await raw.zcard(f"{prefix}:{due}") == 0
    assert await store.delete("ex-1")
    keys = sorted([key async for key in raw.scan_iter(match=f"{prefix}:*")])
    assert keys == [f"{prefix}:def:hash-1", f"{prefix}:meta"]
    await store.close()


async def test_a_refused_connection_raises_store_error_quickly_without_the_password() -> None:
    port = free_port()
    store = open_store(f"redis://:hunter2@127.0.0.1:{port}/0?socket_connect_timeout=2")
    started = time.monotonic()
    with pytest.raises(StoreError, match=f"cannot connect to the Redis store at 127.0.0.1:{port}"):
        await store.load("ex-1")
    assert time.monotonic() - started < 5
    assert "hunter2" not in store.url
    await store.close()


async def test_a_store_from_a_newer_dwf_asks_for_an_upgrade(
    store_url: str, prefix: str, raw: aioredis.Redis
) -> None:
    await raw.hset(f"{prefix}:meta", "schema_version", "99")
    store = RedisStore(store_url)
    with pytest.raises(StoreError, match=r"newer dwf \(schema version 99.*Upgrade dwf"):
        await store.load("ex-1")
    await store.close()


def test_an_engine_halts_and_resumes_through_the_sync_wrappers(store_url: str) -> None:
    check_sync_engine_round_trip(store_url, RedisStore)


# -- URLs ------------------------------------------------------------------------------------


def test_url_options_are_parsed_and_the_password_is_hidden() -> None:
    store = open_store("redis://me:s3cret@cache.example:6380/2?prefix=app&ttl=30d")
    assert isinstance(store, RedisStore)
    assert (store.prefix, store.ttl, store.where) == ("app", 30 * 86400.0, "cache.example:6380/2")
    assert "s3cret" not in store.url
    assert "s3cret" not in repr(store)
    default = open_store("rediss://cache.example")
    assert isinstance(default, RedisStore)
    assert (default.prefix, default.ttl) == ("dwf", None)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://h/0?ttl=soon", "ttl .* must be a time > 0"),
        ("redis://h/0?ttl=0", "ttl .* must be a time > 0"),
        ("redis://h/0?prefix=", "prefix .* must not be empty"),
        ("redis://:pw@h/0?pool=3", "unknown Redis store option 'pool'.*prefix, ttl"),
    ],
)
def test_bad_redis_urls_raise_configuration_error(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        open_store(url)
    assert ":pw@" not in str(caught.value)
