"""One SDK client per event loop, closed when its loop shuts down.

An SDK client pools HTTP connections, and a pooled connection belongs to the event loop that
opened it. dwf may drive one model object from several loops (``run_sync`` starts one per call),
so each loop gets its own client, made on first use.

The client must also be closed *on its own loop*: the SDKs' ``__del__`` schedules ``aclose()`` on
whatever loop runs at garbage collection, which fails ("Event loop is closed") for connections of
a loop that has ended. So each client we make is tied to a small async generator; ``asyncio.run``
and ``asyncio.Runner`` (and so pytest-asyncio and anyio) close every async generator before they
close the loop (``loop.shutdown_asyncgens()``), and closing this one closes the client.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Generic, Protocol, TypeVar


class _Closable(Protocol):
    def is_closed(self) -> bool: ...

    def close(self) -> Awaitable[None]: ...


C = TypeVar("C", bound=_Closable)


class PerLoop(Generic[C]):
    """Clients by event loop. ``owned=False`` (a caller-supplied HTTP client) never closes them."""

    def __init__(self, make: Callable[[], C], *, owned: bool = True) -> None:
        self._make = make
        self._owned = owned
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[C, AsyncGenerator[None, None] | None]
        ] = weakref.WeakKeyDictionary()

    async def get(self) -> C:
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is not None:
            return entry[0]
        # A client can keep its loop alive through its connections, so the weak key alone would
        # never let go of a finished loop.
        for finished in [other for other in self._clients if other.is_closed()]:
            del self._clients[finished]
        client = self._make()
        closer = _close_with_loop(client) if self._owned else None
        self._clients[loop] = (client, closer)  # before awaiting: one client per loop
        if closer is not None:
            await closer.__anext__()  # registers it with the loop's async generator hooks
        return client

    async def aclose(self) -> None:
        """Close the client of the running loop now, and forget every client."""
        entry = self._clients.get(asyncio.get_running_loop())
        self._clients = weakref.WeakKeyDictionary()
        if entry is not None and entry[1] is not None:
            await entry[1].aclose()


async def _close_with_loop(client: _Closable) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        if not client.is_closed():
            await client.close()
