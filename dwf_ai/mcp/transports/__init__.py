"""The MCP transports dwf connects with: one file each (``stdio``, ``http``) beside ``base``."""

from dwf_ai.mcp.transports.base import WatchedTransport, open_transport

__all__ = ["WatchedTransport", "open_transport"]
