"""The in-memory store: the contract, plus what only an in-memory store promises."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from contract import StoreContract, make_record, running, step

from dwf.errors import ConfigurationError
from dwf.storage import MemoryStore, Store, open_store


class TestMemoryStore(StoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[Store]:
        store = MemoryStore()
        yield store
        await store.close()


def test_the_memory_store_url_is_memory() -> None:
    assert MemoryStore().url == "memory://"


async def test_checkpoint_values_are_copied_on_write() -> None:
    store = MemoryStore()
    await running(store)
    items = [1, 2]
    output = {"items": items}
    await store.checkpoint(step(set_variables={"items": items}, output=output, set_output=True))
    items.append(3)
    loaded = await store.load("ex-1")
    assert loaded is not None
    assert (loaded.variables["items"], loaded.output) == ([1, 2], {"items": [1, 2]})
    await store.close()


async def test_an_injected_clock_dates_new_executions() -> None:
    store = MemoryStore(clock=lambda: 42.0)
    created = await store.create(make_record(created_at=0.0), "d")
    assert (created.created_at, created.updated_at) == (42.0, 42.0)
    await store.close()


def test_memory_url_opens_a_memory_store() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    with pytest.raises(ConfigurationError, match="takes no path"):
        open_store("memory://somewhere")
