"""One MCP connection: a background task that owns the SDK's context managers.

The SDK's context managers (``stdio_client``, ``streamable_http_client``, ``Client``) must be
entered and exited in one task, while requests come from whichever step or agent needs them. So
each connection has a task of its own that opens the session, waits until told to close, and
closes it; requests are sent from the callers' tasks through the connected session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from typing import TYPE_CHECKING, Any, TextIO

from dwf_ai.mcp.config import ResolvedServer
from dwf_ai.mcp.errors import MCPClientError, MCPConnectionError, MCPTimeoutError

if TYPE_CHECKING:
    import mcp_types
    from mcp import Client
    from mcp.client.session import IncomingMessage

__all__ = ["Connection", "describe_error", "innermost"]


def _deps() -> tuple[Any, Any]:
    """``anyio`` and ``httpx2``, imported on first use: they come with the ``mcp`` extra, and
    ``import dwf_ai`` must work without it."""
    try:
        import anyio
        import httpx2
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        from dwf_ai.mcp.errors import MCPConfigError

        raise MCPConfigError(
            f'calling MCP servers needs the mcp extra: pip install "dwf[mcp]" ({exc})'
        ) from exc
    return anyio, httpx2


logger = logging.getLogger("dwf.ai")

#: The JSON-RPC error code the SDK uses for a closed connection.
CONNECTION_CLOSED = -32000
# How long closing one connection may take before its task is cancelled (the SDK's own stdio
# shutdown is bounded by about 6.5 s: stdin closed, SIGTERM, SIGKILL).
_CLOSE_TIMEOUT = 10.0


class Connection:
    """One open MCP session, owned by a background task of the event loop that opened it."""

    def __init__(self, server: ResolvedServer, *, errlog: TextIO) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.client: Client | None = None
        self.error: BaseException | None = None  # why connecting failed or the task ended
        self.closed = False  # the transport ended; no request can succeed any more
        self.tools: dict[str, mcp_types.Tool] | None = None
        self.http_error: str | None = None  # the last HTTP error status, e.g. "HTTP 401 ..."
        self._errlog = errlog
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def connecting(self) -> bool:
        return not self._ready.is_set()

    @property
    def usable(self) -> bool:
        return (
            self.client is not None
            and not self.closed
            and not self._stop.is_set()
            and self._task is not None
            and not self._task.done()
        )

    def start(self) -> None:
        self._task = self.loop.create_task(self._run(), name=f"dwf-mcp:{self.server.name}")
        self._task.add_done_callback(_retrieve)

    async def wait_ready(self) -> None:
        """Wait until connected; raise the reason when connecting failed."""
        await self._ready.wait()
        if self.client is None:
            if self.error is None and self._stop.is_set():
                raise MCPConnectionError(
                    f"the connection to MCP server '{self.server.name}' was closed while it was "
                    "being opened (the MCP client pool was closed)",
                    server=self.server.name,
                )
            raise _connect_error(self.server, self.error, self.http_error)

    def _mark_closed(self) -> None:
        self.closed = True

    def _record_http_error(self, status: int, reason: str) -> None:
        self.http_error = f"HTTP {status} {reason}".strip()

    async def _on_message(self, message: IncomingMessage) -> None:
        import mcp_types

        if isinstance(message, mcp_types.ToolListChangedNotification):
            self.tools = None  # listed again on next use

    async def _run(self) -> None:
        import mcp_types
        from mcp import Client

        from dwf_ai.mcp.transports import open_transport

        server = self.server
        connected = False
        try:
            # The deadline covers starting and the handshake only; it is lifted once connected.
            # One scope around the whole lifetime keeps the SDK's task groups properly nested.
            anyio, _ = _deps()
            with anyio.CancelScope(deadline=anyio.current_time() + server.connect_timeout) as scope:
                async with contextlib.AsyncExitStack() as stack:
                    transport = await open_transport(
                        stack,
                        server,
                        errlog=self._errlog,
                        on_close=self._mark_closed,
                        on_http_error=self._record_http_error,
                    )
                    client = Client(
                        transport,
                        read_timeout_seconds=server.timeout,
                        message_handler=self._on_message,
                        client_info=mcp_types.Implementation(name="dwf", version="0.1.0"),
                        cache=None,  # the pool keeps its own tool listing
                    )
                    await stack.enter_async_context(client)
                    scope.deadline = math.inf
                    connected = True
                    self.http_error = None  # e.g. a legacy server's 400 to the discover probe
                    self.client = client
                    self._ready.set()
                    logger.info("connected to MCP server '%s' (%s)", server.name, server.describe())
                    await self._stop.wait()
            if scope.cancelled_caught and not connected:
                self.error = TimeoutError()
        except Exception as exc:  # reported to the callers, never raised in this task
            self.error = exc
            if connected:
                logger.warning(
                    "the connection to MCP server '%s' ended: %s", server.name, describe_error(exc)
                )
        finally:
            self.client = None
            self.closed = True
            self._ready.set()

    async def close(self) -> None:
        """Close the session (in its own task) and wait, bounded, until it is closed."""
        self._stop.set()
        task = self._task
        if task is None or task.done():
            return
        if task.get_loop() is not asyncio.get_running_loop():
            return  # its loop is gone or elsewhere; that loop's shutdown cancels it
        # Still connecting: stop now rather than wait for the handshake (or its timeout).
        timeout = 0.0 if self.connecting else _CLOSE_TIMEOUT
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _retrieve(task: asyncio.Task[None]) -> None:
    """Collect the outcome of a connection task, so asyncio never reports it as lost."""
    if not task.cancelled() and task.exception() is not None:
        logger.debug("MCP connection task ended: %r", task.exception())


def innermost(exc: BaseException | None) -> BaseException | None:
    """The first real error inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def describe_error(exc: BaseException | None) -> str:
    """A short reason for messages: the SDK's or httpx's text, else ``Type: text``."""
    from mcp.shared.exceptions import MCPError

    leaf = innermost(exc)
    if leaf is None:
        return "unknown reason"
    if isinstance(leaf, MCPError):
        return leaf.message
    text = str(leaf) or type(leaf).__name__
    _, httpx2 = _deps()
    return text if isinstance(leaf, httpx2.HTTPError) else f"{type(leaf).__name__}: {text}"


def _connect_error(
    server: ResolvedServer, exc: BaseException | None, http_error: str | None = None
) -> MCPClientError:
    from mcp.shared.exceptions import MCPError

    _, httpx2 = _deps()
    leaf = innermost(exc)
    where = f"MCP server '{server.name}' ({server.describe()})"
    if isinstance(leaf, TimeoutError):
        return MCPTimeoutError(
            f"{where} did not complete the MCP handshake within {server.connect_timeout:g}s; "
            "check that it is an MCP server for this transport, or raise 'connect_timeout'",
            server=server.name,
        )
    if isinstance(leaf, FileNotFoundError | PermissionError | NotADirectoryError):
        if server.cwd is not None and not os.path.isdir(server.cwd):
            reason = f"its working directory '{server.cwd}' does not exist"
        elif isinstance(leaf, PermissionError):
            reason = f"'{server.command}' is not executable"
        else:
            reason = f"'{server.command}' was not found (is it installed and on PATH?)"
        return MCPConnectionError(
            f"cannot start {where}: {reason}", server=server.name, reason=reason
        )
    if isinstance(leaf, httpx2.HTTPError):
        return MCPConnectionError(
            f"cannot reach {where}: {leaf}. Check the URL and that the server is running",
            server=server.name,
        )
    if http_error is not None and http_error.startswith(("HTTP 401", "HTTP 403")):
        return MCPConnectionError(
            f"{where} refused the connection ({http_error}); check its 'headers' (e.g. "
            "Authorization) and the environment variables they use",
            server=server.name,
        )
    if isinstance(leaf, MCPError) and leaf.code == CONNECTION_CLOSED:
        return MCPConnectionError(
            f"{where} closed the connection during the MCP handshake (did the process exit? "
            "its stderr output may say why)",
            server=server.name,
        )
    return MCPConnectionError(
        f"cannot connect to {where}: {describe_error(exc)}", server=server.name
    )
