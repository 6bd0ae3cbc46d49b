"""The per-event-loop connection the PostgreSQL and Redis stores share, with fake connections."""

from __future__ import annotations

import asyncio
import itertools

from dwf.storage._loops import ConnectionPerLoop


class Connections:
    """Opens numbered fake connections and records which were closed."""

    def __init__(self) -> None:
        self._numbers = itertools.count(1)
        self.opened: list[int] = []
        self.closed: list[int] = []

    async def connect(self) -> int:
        await asyncio.sleep(0)  # let concurrent callers pile up on the lock
        number = next(self._numbers)
        self.opened.append(number)
        return number

    async def disconnect(self, number: int) -> None:
        self.closed.append(number)


def test_each_event_loop_gets_its_own_connection_closed_as_the_loop_ends() -> None:
    fake = Connections()
    per_loop = ConnectionPerLoop(fake.disconnect)

    async def twice() -> list[int]:
        return [await per_loop.get(fake.connect), await per_loop.get(fake.connect)]

    assert asyncio.run(twice()) == [1, 1]
    assert fake.closed == [1]  # asyncio.run closed it before closing its loop
    assert asyncio.run(twice()) == [2, 2]
    assert (fake.opened, fake.closed) == ([1, 2], [1, 2])


async def test_concurrent_first_calls_share_one_connection() -> None:
    fake = Connections()
    per_loop = ConnectionPerLoop(fake.disconnect)
    got = await asyncio.gather(*(per_loop.get(fake.connect) for _ in range(5)))
    assert (got, fake.opened) == ([1] * 5, [1])
    await per_loop.close()


async def test_close_closes_the_connection_at_once_and_forgets_it() -> None:
    fake = Connections()
    per_loop = ConnectionPerLoop(fake.disconnect)
    await per_loop.get(fake.connect)
    await per_loop.close()
    assert (fake.closed, per_loop.current) == ([1], None)
    await per_loop.close()  # twice is harmless
    assert fake.closed == [1]
