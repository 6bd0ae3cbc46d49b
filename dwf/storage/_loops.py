"""A server store's connections, opened per event loop and closed with it.

An asyncio connection (a psycopg pool, a redis-py client) belongs to the event loop that opened
it. dwf may use one store from several loops in turn (each ``*_sync`` wrapper runs
``asyncio.run()``), so each loop gets its own, opened on first use. When a loop shuts down, the
connection opened in it is closed while the loop still runs: it is guarded by an async generator,
and ``asyncio.run`` finalizes a loop's async generators before it closes the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["ConnectionPerLoop"]

C = TypeVar("C")


class ConnectionPerLoop(Generic[C]):
    """The connection of the running event loop, opened on first use.

    Args:
        disconnect: Closes a connection, in the loop that opened it.
    """

    def __init__(self, disconnect: Callable[[C], Awaitable[None]]) -> None:
        self._disconnect = disconnect
        self._current: C | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Lock | None = None
        self._closer: AsyncGenerator[None, None] | None = None

    @property
    def current(self) -> C | None:
        """The connection opened in the most recent loop, if it is open."""
        return self._current

    async def get(self, connect: Callable[[], Awaitable[C]]) -> C:
        """The running loop's connection; ``connect`` opens it on the loop's first call.

        ``connect`` is passed on each call rather than kept, so that this object holds no
        reference to the store and a store dropped without closing is freed at once.
        """
        loop = asyncio.get_running_loop()
        if self._current is not None and self._loop is loop:
            return self._current
        if self._opening is None or self._loop is not loop:
            # A new loop: the connection of the old one was closed as that loop shut down.
            self._current, self._closer = None, None
            self._loop, self._opening = loop, asyncio.Lock()
        async with self._opening:
            if self._current is None:
                connection = await connect()
                self._closer = _close_with_the_loop(connection, self._disconnect)
                await anext(self._closer)
                self._current = connection
            return self._current

    async def close(self) -> None:
        """Close the connection now if it belongs to the running loop; forget it either way."""
        closer, self._closer, self._current = self._closer, None, None
        if closer is not None and self._loop is asyncio.get_running_loop():
            await closer.aclose()


async def _close_with_the_loop(
    connection: C, disconnect: Callable[[C], Awaitable[None]]
) -> AsyncGenerator[None, None]:
    """Waits until :meth:`ConnectionPerLoop.close`, or until the event loop shuts down its async
    generators, then closes the connection while its loop still runs."""
    try:
        yield
    finally:
        await disconnect(connection)
