"""What the transports share: opening the SDK transport for a server, and noticing when it ends.

The SDK reports a closed connection only to the requests that are waiting at that moment. The
pool also needs to know about a server that went away between two calls (so the next call
reconnects first instead of failing), so each transport's read stream is wrapped in one that
calls ``on_close`` when it ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TextIO

import anyio
from mcp.client._transport import ReadStream, TransportStreams
from mcp.shared.message import SessionMessage

from dwf_ai.mcp.config import ResolvedServer

__all__ = ["WatchedTransport", "open_transport"]

Item = SessionMessage | Exception


async def open_transport(
    stack: contextlib.AsyncExitStack,
    server: ResolvedServer,
    *,
    errlog: TextIO,
    on_close: Callable[[], None],
    on_http_error: Callable[[int, str], None],
) -> WatchedTransport:
    """The SDK transport for ``server`` (not entered yet). Resources it needs (an HTTP client)
    are entered on ``stack``, so they close with it, in the task that opened them.
    ``on_http_error(status, reason)`` hears of HTTP error statuses (HTTP servers only)."""
    if server.transport == "stdio":
        from dwf_ai.mcp.transports.stdio import stdio_transport

        inner = stdio_transport(server, errlog=errlog)
    else:
        from dwf_ai.mcp.transports.http import http_transport

        inner = await http_transport(stack, server, on_http_error=on_http_error)
    return WatchedTransport(inner, on_close)


class WatchedTransport(contextlib.AbstractAsyncContextManager[TransportStreams]):
    """A transport whose read stream calls ``on_close`` once it ends (EOF, closed, broken)."""

    def __init__(
        self,
        inner: contextlib.AbstractAsyncContextManager[TransportStreams],
        on_close: Callable[[], None],
    ) -> None:
        self._inner = inner
        self._on_close = on_close

    async def __aenter__(self) -> TransportStreams:
        read, write = await self._inner.__aenter__()
        return _WatchedReadStream(read, self._on_close), write

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._on_close()
        return await self._inner.__aexit__(exc_type, exc, tb)


class _WatchedReadStream:
    """Delegates to the transport's read stream; reports its end."""

    def __init__(self, inner: ReadStream[Item], on_close: Callable[[], None]) -> None:
        self._inner = inner
        self._on_close = on_close

    @property
    def last_context(self) -> Any:
        # The dispatcher reads the sender's context from the stream when it has one.
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Item:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_close()
            raise

    async def aclose(self) -> None:
        self._on_close()
        await self._inner.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Item:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        return None
