"""stdio: the server is a subprocess that speaks MCP on its stdin and stdout."""

from __future__ import annotations

import contextlib
from typing import TextIO

from mcp.client._transport import TransportStreams
from mcp.client.stdio import StdioServerParameters, stdio_client

from dwf_ai.mcp.config import ResolvedServer

__all__ = ["stdio_transport"]


def stdio_transport(
    server: ResolvedServer, *, errlog: TextIO
) -> contextlib.AbstractAsyncContextManager[TransportStreams]:
    """Start ``server.command`` when entered; stop it (stdin closed, then SIGTERM, then SIGKILL,
    every wait bounded by the SDK) when exited. The server's stderr goes to ``errlog``."""
    assert server.command is not None  # the config guarantees it for stdio
    params = StdioServerParameters(
        command=server.command,
        args=list(server.args),
        env=dict(server.env) or None,
        cwd=server.cwd,
    )
    return stdio_client(params, errlog=errlog)
