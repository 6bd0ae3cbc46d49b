"""Serving over stdio, the transport Claude Desktop and other local hosts start.

stdout carries protocol messages only. The SDK points file descriptor 1 at stderr while it serves,
so a stray ``print`` in a service cannot corrupt the stream; :func:`quiet_stdout` does the same for
the time before, while workflows and services files are loaded.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mcp.server.stdio import stdio_server

if TYPE_CHECKING:
    from mcp_server.server import WorkflowServer

__all__ = ["quiet_stdout", "serve_stdio"]


async def serve_stdio(server: WorkflowServer) -> None:
    """Serve until the client closes stdin."""
    async with stdio_server() as (read_stream, write_stream):
        await server.mcp.run(read_stream, write_stream, server.mcp.create_initialization_options())


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send Python-level writes to stdout to stderr for the duration of the block."""
    with contextlib.redirect_stdout(sys.stderr):
        yield
