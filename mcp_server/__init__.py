"""mcp_server: exposes dwf workflows as MCP tools (stdio for Claude Desktop, Streamable HTTP).

Being built on the official ``mcp`` SDK; until then this package provides nothing.
"""

__all__: list[str] = []
