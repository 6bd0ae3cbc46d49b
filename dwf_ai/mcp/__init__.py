"""Calling external MCP servers: the ``mcp_servers`` section, the ``mcp`` step, and the pool of
connections that steps and agents share.

Wiring (done by the AI extension)::

    pool = MCPClientPool()
    registry.register_top_level_key(
        TopLevelKey("mcp_servers", MCPServersSection, check=check_mcp_servers)
    )
    registry.register_step(MCPStep(pool=pool))
    ...
    await pool.aclose()  # when the engine closes

Agents offer MCP tools through :func:`list_mcp_tools` (model-facing names, journal-friendly)
and call them with ``pool.call_tool(tool.server, tool.tool, arguments, servers=...)``.
"""

from dwf_ai.mcp.client import IDEMPOTENCY_META_KEY, MCPClientPool
from dwf_ai.mcp.config import (
    MCPServerConfig,
    MCPServersSection,
    check_mcp_servers,
    mcp_servers_of,
)
from dwf_ai.mcp.errors import (
    MCPClientError,
    MCPConfigError,
    MCPConnectionError,
    MCPInvalidArguments,
    MCPInvalidCall,
    MCPTimeoutError,
    MCPToolError,
    MCPToolNotFound,
)
from dwf_ai.mcp.result import ToolResult
from dwf_ai.mcp.step import MCPConfig, MCPStep
from dwf_ai.mcp.toolset import MCPTool, list_mcp_tools

__all__ = [
    "IDEMPOTENCY_META_KEY",
    "MCPClientError",
    "MCPClientPool",
    "MCPConfig",
    "MCPConfigError",
    "MCPConnectionError",
    "MCPInvalidArguments",
    "MCPInvalidCall",
    "MCPServerConfig",
    "MCPServersSection",
    "MCPStep",
    "MCPTimeoutError",
    "MCPTool",
    "MCPToolError",
    "MCPToolNotFound",
    "ToolResult",
    "check_mcp_servers",
    "list_mcp_tools",
    "mcp_servers_of",
]
