"""Streamable HTTP: the server is an HTTP endpoint; each request is a POST."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import httpx2
from mcp.client._transport import TransportStreams
from mcp.client.streamable_http import streamable_http_client

from dwf_ai.mcp.config import ResolvedServer

__all__ = ["http_transport"]

#: The SDK's read timeout for HTTP streams; longer when a request may take longer.
_STREAM_READ_TIMEOUT = 300.0


async def http_transport(
    stack: contextlib.AsyncExitStack,
    server: ResolvedServer,
    *,
    on_http_error: Callable[[int, str], None],
) -> contextlib.AbstractAsyncContextManager[TransportStreams]:
    """The Streamable HTTP transport, on an ``httpx2`` client that sends ``server.headers``
    (already interpolated) with every request. The client is entered on ``stack``.

    The SDK turns an HTTP error status into a generic "Server returned an error response";
    ``on_http_error(status, reason)`` receives the real status, so errors can say "HTTP 401"."""

    async def record(response: httpx2.Response) -> None:
        if response.status_code >= 400 and response.request.method == "POST":
            on_http_error(response.status_code, response.reason_phrase)

    assert server.url is not None  # the config guarantees it for http
    timeout = httpx2.Timeout(
        server.connect_timeout, read=max(_STREAM_READ_TIMEOUT, server.timeout + 10.0)
    )
    client = httpx2.AsyncClient(
        headers=server.headers, timeout=timeout, event_hooks={"response": [record]}
    )
    await stack.enter_async_context(client)
    return streamable_http_client(server.url, http_client=client)
