"""mcp_server: dwf workflows as MCP tools, over stdio (Claude Desktop) and Streamable HTTP.

From the command line::

    python -m mcp_server /abs/path/workflows --services /abs/path/services.py
    python -m mcp_server --transport http --port 8765 --token "$DWF_MCP_TOKEN" workflows/

From Python::

    from mcp_server import WorkflowServer, create_app, load_workflows

    server = WorkflowServer(load_workflows(["workflows/"]), services=services)
    app = create_app(server, token="...")      # a Starlette app; or: await serve_stdio(server)

Every workflow becomes a ``run_<workflow id>`` tool; ``get_execution``, ``resume_execution``,
``cancel_execution`` and ``list_executions`` manage executions that outlast a tool call or wait
for a person. See docs/mcp.md.

The SDK is imported on first use, so ``import mcp_server`` works (and can explain what to install)
without the ``mcp`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp_server.http import create_app
    from mcp_server.loading import LoadedWorkflows, load_services, load_workflows
    from mcp_server.server import WorkflowServer
    from mcp_server.stdio import serve_stdio

__all__ = [
    "LoadedWorkflows",
    "WorkflowServer",
    "create_app",
    "load_services",
    "load_workflows",
    "serve_stdio",
]

_LAZY = {
    "LoadedWorkflows": "mcp_server.loading",
    "load_services": "mcp_server.loading",
    "load_workflows": "mcp_server.loading",
    "WorkflowServer": "mcp_server.server",
    "create_app": "mcp_server.http",
    "serve_stdio": "mcp_server.stdio",
}


def __dir__() -> list[str]:
    return sorted(__all__)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mcp_server' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
