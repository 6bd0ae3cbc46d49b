"""What can go wrong when dwf calls an MCP server.

Every error names the server (and the tool, when there is one) as attributes, and its message
says what to do next. They fit into dwf's error tree::

    ExecutionError
    └── MCPClientError                  a call to an MCP server failed (retryable)
        ├── MCPConnectionError          the server cannot be started or reached, or it went away
        ├── MCPTimeoutError             no answer within the server's ``timeout``
        ├── MCPToolError                the tool (or the server) reported an error
        └── MCPInvalidCall              the call cannot succeed as written (never retried)
            ├── MCPToolNotFound         the server has no tool of that name
            └── MCPInvalidArguments     the arguments do not match the tool's input schema
    ConfigurationError
    └── MCPConfigError                  an undefined server, an unset ${VAR} (never retried)

``MCPInvalidCall`` and ``MCPConfigError`` are also :class:`~dwf.errors.NonRetryableError`, so a
step's ``retries`` are not spent on them. An agent loop reports an ``MCPInvalidCall`` to the
model as a failed tool call (the model can correct itself); the others fail the step.
"""

from __future__ import annotations

from dwf.errors import ConfigurationError, ExecutionError, NonRetryableError

__all__ = [
    "MCPClientError",
    "MCPConfigError",
    "MCPConnectionError",
    "MCPInvalidArguments",
    "MCPInvalidCall",
    "MCPTimeoutError",
    "MCPToolError",
    "MCPToolNotFound",
]


class MCPClientError(ExecutionError):
    """A call to an MCP server failed. ``server`` and ``tool`` say which."""


class MCPConnectionError(MCPClientError):
    """The server cannot be started or reached, or the connection closed during a call."""


class MCPTimeoutError(MCPClientError):
    """The server did not answer within the configured ``timeout`` (or ``connect_timeout``)."""


class MCPToolError(MCPClientError):
    """The tool reported an error (``isError``) or the server refused the request; the message
    carries the server's own text."""


class MCPInvalidCall(MCPClientError, NonRetryableError):
    """The call cannot succeed as written; retrying it would fail the same way."""


class MCPToolNotFound(MCPInvalidCall):
    """The server does not offer a tool of that name."""


class MCPInvalidArguments(MCPInvalidCall):
    """The arguments do not match the tool's input schema."""


class MCPConfigError(ConfigurationError, NonRetryableError):
    """The MCP settings cannot be used: an undefined server or an unset ``${VAR}``."""
