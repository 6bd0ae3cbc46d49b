"""The MCP client pool: one connection per server per event loop, reused, reopened when it drops.

::

    pool = MCPClientPool()
    tools = await pool.list_tools("github", servers=mcp_servers_of(workflow))
    result = await pool.call_tool("github", "search_issues", {"q": "bug"}, servers=...)
    await pool.aclose()

Each connection lives in a background task of its own (see :mod:`dwf_ai.mcp.connection`).

Every wait is bounded: starting a server and the MCP handshake by ``connect_timeout``, each
request by ``timeout`` (both from the server's settings), closing by the SDK's own bounded
shutdown. A connection that ended (the server exited, the HTTP server went away) is noticed and
reopened by the next call. A call that was already sent when its connection dropped is not
repeated (the tool may have run): it fails with :class:`MCPConnectionError`, and the step's
``retries`` decide what happens next.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import jsonschema

from dwf.extensions import did_you_mean
from dwf_ai.mcp.config import MCPServerConfig, ResolvedServer
from dwf_ai.mcp.connection import (
    CONNECTION_CLOSED,
    Connection,
    _deps,
    describe_error,
    innermost,
)
from dwf_ai.mcp.errors import (
    MCPClientError,
    MCPConfigError,
    MCPConnectionError,
    MCPInvalidArguments,
    MCPTimeoutError,
    MCPToolError,
    MCPToolNotFound,
)
from dwf_ai.mcp.result import ToolResult
from dwf_ai.models.base import ToolSpec

if TYPE_CHECKING:
    import mcp_types
    from mcp import Client

__all__ = ["IDEMPOTENCY_META_KEY", "MCPClientPool"]


def _server_errlog() -> TextIO:
    """Where a stdio server's stderr goes: ours when it is a real file (a subprocess needs a
    descriptor), else the original stderr, else nowhere (e.g. under captured output)."""
    for stream in (sys.stderr, sys.__stderr__):
        try:
            if stream is not None:
                stream.fileno()
                return stream
        except (AttributeError, OSError, ValueError):
            continue
    return open(os.devnull, "w")  # lives as long as the process


logger = logging.getLogger("dwf.ai")

T = TypeVar("T")

#: The ``_meta`` key that carries the step's idempotency key on ``tools/call``, so a server
#: can recognise a call repeated after a crash.
IDEMPOTENCY_META_KEY = "dwf/idempotency-key"

# JSON-RPC error codes the SDK uses for a timeout and a lost HTTP session.
_REQUEST_TIMEOUT = -32001
_INVALID_REQUEST = -32600
_MAX_TOOL_PAGES = 100


class MCPClientPool:
    """The MCP connections of one engine: reused within the process, reopened when they drop.

    Servers are named: by the ``servers`` mapping given to a call (a workflow's
    ``mcp_servers`` section, see :func:`~dwf_ai.mcp.config.mcp_servers_of`), else by the
    ``servers`` given here. Connections are keyed by their settings after ``${VAR}``
    substitution, so two workflows that define the same server share one connection, and a
    changed variable opens a new one.

    Args:
        servers: Servers known to every call (e.g. configured in Python for an application).
        environ: Where ``${VAR}`` values come from; ``os.environ`` (read at connect time) when
            ``None``.
        errlog: Where stdio servers' stderr goes (default ``sys.stderr``).

    Close the pool with :meth:`aclose` (or ``async with``) in the event loop that used it.
    Connections opened in an event loop that has since been closed (each ``run_sync`` runs
    its own loop) were closed by that loop's shutdown; the pool forgets them.
    """

    def __init__(
        self,
        servers: Mapping[str, MCPServerConfig | Mapping[str, Any]] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        errlog: TextIO | None = None,
    ) -> None:
        self.servers: dict[str, MCPServerConfig] = {
            name: config if isinstance(config, MCPServerConfig) else MCPServerConfig(**config)
            for name, config in (servers or {}).items()
        }
        self._environ = environ
        self._errlog = errlog
        self._connections: dict[tuple[int, str], Connection] = {}

    async def __aenter__(self) -> MCPClientPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---------------------------------------------------------------------------- public API

    def config(
        self, server_name: str, servers: Mapping[str, MCPServerConfig] | None = None
    ) -> MCPServerConfig:
        """The settings of ``server_name``: from ``servers`` first, then the pool's own."""
        if servers is not None and server_name in servers:
            return servers[server_name]
        if server_name in self.servers:
            return self.servers[server_name]
        known = sorted({*(servers or {}), *self.servers})
        hint = did_you_mean(server_name, known)
        listed = f"Defined servers: {', '.join(known)}." if known else "No server is defined."
        raise MCPConfigError(
            f"MCP server '{server_name}' is not defined{hint}. {listed} Define it under the "
            "workflow's top-level 'mcp_servers' key",
            server=server_name,
        )

    async def list_tools(
        self,
        server_name: str,
        *,
        servers: Mapping[str, MCPServerConfig] | None = None,
        refresh: bool = False,
    ) -> list[ToolSpec]:
        """The tools of a server, with their JSON Schemas, ready to offer to a model.

        The listing is fetched once per connection (again after ``refresh=True``, a reconnect,
        or the server's ``tools/list_changed`` notification).
        """
        server = self._resolve(server_name, servers)
        tools = await self._tools(server, refresh=refresh)
        return [_tool_spec(tool) for tool in tools.values()]

    async def call_tool(
        self,
        server_name: str,
        tool: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        servers: Mapping[str, MCPServerConfig] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (sent with the request, not a local wait)
        idempotency_key: str | None = None,
    ) -> ToolResult:
        """Call a tool and return its result, also when the tool reports an error
        (``result.is_error``; the step turns that into a failure, an agent shows it to the
        model).

        Raises :class:`MCPToolNotFound` or :class:`MCPInvalidArguments` (checked against the
        server's listing before sending), :class:`MCPConnectionError`,
        :class:`MCPTimeoutError` (after ``timeout`` seconds, default: the server's), and
        :class:`MCPToolError` when the server refuses the request.
        """
        server = self._resolve(server_name, servers)
        args = dict(arguments or {})
        spec = await self._find_tool(server, tool)
        _check_arguments(server, spec, args)
        limit = timeout if timeout is not None else server.timeout
        meta: Any = {IDEMPOTENCY_META_KEY: idempotency_key} if idempotency_key else None

        async def send(client: Client) -> mcp_types.CallToolResult:
            return await client.call_tool(tool, args, read_timeout_seconds=limit, meta=meta)

        try:
            result = await self._request(server, f"tools/call '{tool}'", send, limit, tool=tool)
        except RuntimeError as exc:  # the SDK checks structured content against outputSchema
            raise MCPToolError(
                f"tool '{tool}' on MCP server '{server.name}' returned an invalid result: {exc}",
                server=server.name,
                tool=tool,
            ) from None
        return ToolResult(
            content=[
                block.model_dump(mode="json", by_alias=True, exclude_none=True)
                for block in result.content
            ],
            structured=result.structured_content,
            is_error=result.is_error,
        )

    async def aclose(self) -> None:
        """Close every connection this event loop opened (forgetting those of other loops)."""
        connections, self._connections = list(self._connections.values()), {}
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(c.close() for c in connections if c.loop is loop))

    # ---------------------------------------------------------------------------- internals

    def _resolve(
        self, server_name: str, servers: Mapping[str, MCPServerConfig] | None
    ) -> ResolvedServer:
        environ = self._environ if self._environ is not None else os.environ
        return self.config(server_name, servers).resolve(server_name, environ)

    async def _connection(self, server: ResolvedServer) -> Connection:
        _require_sdk()
        loop = asyncio.get_running_loop()
        for old_key, old in list(self._connections.items()):
            if old.loop.is_closed():
                del self._connections[old_key]
        key = (id(loop), server.key)
        existing = self._connections.get(key)
        if existing is not None and existing.loop is loop:
            if existing.usable or existing.connecting:
                await self._ready(existing, key)
                return existing
            await self._discard(existing)
        conn = Connection(server, errlog=self._errlog or _server_errlog())
        self._connections[key] = conn
        conn.start()
        await self._ready(conn, key)
        return conn

    async def _ready(self, conn: Connection, key: tuple[int, str]) -> None:
        try:
            await conn.wait_ready()
        except MCPClientError:
            if self._connections.get(key) is conn:
                del self._connections[key]
            raise

    async def _discard(self, conn: Connection) -> None:
        for key, value in list(self._connections.items()):
            if value is conn:
                del self._connections[key]
        await conn.close()

    async def _request(
        self,
        server: ResolvedServer,
        what: str,
        send: Callable[[Client], Awaitable[T]],
        limit: float,
        *,
        tool: str | None = None,
        idempotent: bool = False,
    ) -> T:
        """Send one request with a deadline; reconnect and resend once when that is safe (the
        request never reached the server, or repeating it has no effect)."""
        from mcp.shared.exceptions import MCPError

        anyio, httpx2 = _deps()
        for attempt in (1, 2):
            conn = await self._connection(server)
            assert conn.client is not None
            conn.http_error = None
            try:
                with anyio.fail_after(limit):
                    return await send(conn.client)
            except TimeoutError:
                raise _timeout(server, what, limit, tool) from None
            except MCPError as exc:
                if exc.code == _REQUEST_TIMEOUT:
                    raise _timeout(server, what, limit, tool) from None
                lost = exc.code == CONNECTION_CLOSED or (
                    exc.code == _INVALID_REQUEST and exc.message == "Session terminated"
                )
                if not lost:
                    status = f", {conn.http_error}" if conn.http_error else ""
                    raise MCPToolError(
                        f"MCP server '{server.name}' refused {what}: {exc.message} "
                        f"(error {exc.code}{status})",
                        server=server.name,
                        tool=tool,
                        code=exc.code,
                    ) from None
                await self._discard(conn)  # also waits until its task recorded why it ended
                unsent = exc.code == _INVALID_REQUEST or isinstance(
                    innermost(conn.error), httpx2.ConnectError
                )
                if attempt == 1 and (idempotent or unsent):
                    continue
                raise _lost(server, what, tool, conn.error) from None
            except RuntimeError:
                if conn.usable:
                    raise  # a real SDK complaint (e.g. an invalid result), not a lost session
                await self._discard(conn)
                if attempt == 1 and idempotent:
                    continue
                raise _lost(server, what, tool, conn.error) from None
            except (httpx2.TransportError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await self._discard(conn)
                if attempt == 1 and idempotent:
                    continue
                raise _lost(server, what, tool, conn.error) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _tools(self, server: ResolvedServer, *, refresh: bool) -> dict[str, mcp_types.Tool]:
        conn = await self._connection(server)
        if conn.tools is not None and not refresh:
            return conn.tools

        async def send(client: Client) -> dict[str, mcp_types.Tool]:
            tools: dict[str, mcp_types.Tool] = {}
            cursor: str | None = None
            for _ in range(_MAX_TOOL_PAGES):
                page = await client.list_tools(cursor=cursor)
                tools.update((t.name, t) for t in page.tools)
                cursor = page.next_cursor
                if cursor is None:
                    break
            return tools

        tools = await self._request(server, "tools/list", send, server.timeout, idempotent=True)
        # The request may have reconnected; keep the listing on the live connection.
        (await self._connection(server)).tools = tools
        return tools

    async def _find_tool(self, server: ResolvedServer, name: str) -> mcp_types.Tool:
        tools = await self._tools(server, refresh=False)
        if name not in tools:  # the server may have added it since the listing
            tools = await self._tools(server, refresh=True)
        if name in tools:
            return tools[name]
        known = sorted(tools)
        raise MCPToolNotFound(
            f"MCP server '{server.name}' has no tool '{name}'{did_you_mean(name, known)}. "
            f"Its tools: {', '.join(known) or '(none)'}",
            server=server.name,
            tool=name,
        )


# -------------------------------------------------------------------------------- helpers


def _require_sdk() -> None:
    try:
        import mcp  # noqa: F401
    except ImportError as exc:
        raise MCPConfigError(
            'calling MCP servers needs the official MCP SDK: pip install "dwf[mcp]"'
        ) from exc


def _tool_spec(tool: mcp_types.Tool) -> ToolSpec:
    # "$schema" names the draft the server wrote against; model providers do not want it.
    parameters = {k: v for k, v in tool.input_schema.items() if k != "$schema"}
    description = tool.description or tool.title or ""
    return ToolSpec(name=tool.name, description=description, parameters=parameters)


def _check_arguments(server: ResolvedServer, tool: mcp_types.Tool, args: dict[str, Any]) -> None:
    schema = tool.input_schema
    try:
        validator_cls = jsonschema.validators.validator_for(schema)
        validator_cls.check_schema(schema)
    except jsonschema.SchemaError:
        logger.debug("tool '%s' has an invalid input schema; not checked here", tool.name)
        return
    errors = sorted(validator_cls(schema).iter_errors(args), key=lambda e: list(e.path))
    if errors:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.path) or '(arguments)'}: {e.message}" for e in errors[:5]
        )
        raise MCPInvalidArguments(
            f"the arguments for tool '{tool.name}' on MCP server '{server.name}' do not match "
            f"its input schema: {detail}",
            server=server.name,
            tool=tool.name,
        )


def _timeout(server: ResolvedServer, what: str, limit: float, tool: str | None) -> MCPTimeoutError:
    return MCPTimeoutError(
        f"MCP server '{server.name}' did not answer {what} within {limit:g}s; raise the "
        "server's 'timeout' (or the step's) if it needs longer",
        server=server.name,
        tool=tool,
    )


def _lost(
    server: ResolvedServer, what: str, tool: str | None, cause: BaseException | None
) -> MCPConnectionError:
    detail = f": {describe_error(cause)}" if cause is not None else ""
    effect = " The tool may or may not have run." if tool is not None else ""
    return MCPConnectionError(
        f"the connection to MCP server '{server.name}' ({server.describe()}) closed during "
        f"{what}{detail}.{effect} The next call reconnects",
        server=server.name,
        tool=tool,
    )
