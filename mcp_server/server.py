"""The MCP server: dwf workflows as tools, on the official SDK's low-level ``Server``.

A :class:`WorkflowServer` is transport-free. Serve it over stdio (:func:`mcp_server.serve_stdio`),
over Streamable HTTP (:func:`mcp_server.create_app`), or connect the SDK's in-memory client to
``server.mcp`` in tests::

    from mcp import Client
    from mcp_server import WorkflowServer, load_workflows

    server = WorkflowServer(load_workflows(["expense.yml"]), store="memory://")
    async with Client(server.mcp) as client:
        result = await client.call_tool("run_expense", {"amount": 50, "requester": "Ada"})
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity

import dwf
from mcp_server.executions import Executions
from mcp_server.handlers import ToolCalls
from mcp_server.loading import LoadedWorkflows
from mcp_server.tools import ToolSpec, build_tools

if TYPE_CHECKING:
    from dwf import Engine, Registry, Services, Store, WorkflowDefinition

__all__ = ["DEFAULT_WAIT", "WorkflowServer"]

logger = logging.getLogger("dwf.mcp")

#: Seconds a tool call waits for a run before answering ``running`` (Claude Desktop gives up at 60).
DEFAULT_WAIT = 25.0

INSTRUCTIONS = (
    "Each run_<workflow> tool starts a durable workflow. If it finishes quickly the result comes "
    "back at once; otherwise the answer has status 'running' and an execution_id: call "
    "get_execution (with wait_seconds) until it is done. Status 'halted' means a person must "
    "decide: show them the prompt and data, then call resume_execution with approved true/false "
    "(approvals) or a response (other halts). cancel_execution stops an execution; "
    "list_executions shows recent ones."
)


class WorkflowServer:
    """Serves workflows as MCP tools.

    Args:
        workflows: what to serve: a :class:`LoadedWorkflows`, or workflow definitions.
        catalog: workflows that sub-workflow steps may start (default: the served ones).
        engine: an engine to run on (you keep ownership); otherwise one is made from ``store``,
            ``services`` and ``registry`` each time the server starts and closed when it stops.
        store: a store URL or :class:`dwf.Store` (default: ``$DWF_STORE`` or dwf's default file).
        services: what ``call`` steps and declared tools call.
        registry: step types and extensions (default: dwf's with the installed extensions).
        name: the server name clients show.
        wait: seconds a tool call waits for a run before it answers ``running``.
        declared_tools: expose the tools workflows declare in ``tools:``.
        tool_prefix: each workflow's tool is named ``<tool_prefix><workflow id>``.
        elicitation: ask the user about approvals directly when the client supports it.
        recover: on start, continue executions of the served workflows whose process died
            (as when the host restarts the server) and fire due approval timeouts.
    """

    def __init__(
        self,
        workflows: LoadedWorkflows | Iterable[WorkflowDefinition],
        *,
        catalog: Mapping[str, WorkflowDefinition] | None = None,
        engine: Engine | None = None,
        store: Store | str | None = None,
        services: Services | Mapping[str, Any] | None = None,
        registry: Registry | None = None,
        name: str = "dwf",
        wait: float = DEFAULT_WAIT,
        declared_tools: bool = True,
        tool_prefix: str = "run_",
        elicitation: bool = True,
        recover: bool = True,
    ) -> None:
        if isinstance(workflows, LoadedWorkflows):
            catalog = {**workflows.catalog, **(catalog or {})}
            workflows = workflows.workflows
        self.workflows: dict[str, WorkflowDefinition] = {w.id: w for w in workflows}
        if not self.workflows:
            raise dwf.ConfigurationError("no workflows to serve")
        if wait < 0:
            raise dwf.ConfigurationError(f"wait must be >= 0 seconds, got {wait:g}")
        if engine is not None and (store, services, registry) != (None, None, None):
            raise dwf.ConfigurationError(
                "pass either an engine or store/services/registry (the engine has its own)"
            )
        self.catalog = {**self.workflows, **(catalog or {})}
        self.wait = float(wait)
        self.name = name
        self._engine = engine
        self._store = store
        self._services = services
        self._registry = registry
        self._recover = recover
        self.tools: dict[str, ToolSpec] = build_tools(
            list(self.workflows.values()),
            wait=self.wait,
            declared=declared_tools,
            prefix=tool_prefix,
        )
        self._listing = types.ListToolsResult(tools=[t.to_mcp() for t in self.tools.values()])
        self._calls = ToolCalls(self.tools, wait=self.wait, elicit=elicitation)
        self._running: Executions | None = None
        self._users = 0
        self.mcp: Server[Executions] = Server(
            name,
            version=dwf.__version__,
            instructions=INSTRUCTIONS,
            lifespan=self._lifespan,
            get_tool_input_schema=self._input_schema,
            on_list_tools=self._list_tools,
            on_call_tool=self._calls,
        )
        # 2026-07-28 approvals come back with a request state; seal it so clients cannot forge one.
        security = RequestStateSecurity.ephemeral()
        self.mcp.middleware.append(RequestStateBoundary(security, default_audience=name))

    # ------------------------------------------------------------------------------ lifecycle

    @property
    def executions(self) -> Executions:
        """The running executions (only while the server runs)."""
        if self._running is None:
            raise RuntimeError(
                "the dwf MCP server is not running: serve it (serve_stdio, create_app) or enter "
                "`async with server.running()`"
            )
        return self._running

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Executions]:
        """Start the engine and the executions on first entry; stop them on the last exit. Every
        transport enters this through the SDK server's lifespan."""
        if self._running is None:
            engine = self._engine or dwf.Engine(
                self._store,
                services=self._services,
                registry=self._registry or dwf.Registry.with_installed_extensions(),
                workflows=self.catalog,
            )
            self._running = Executions(engine, self.workflows)
            logger.info(
                "serving %d workflow(s) as %d tools; store %s",
                len(self.workflows),
                len(self.tools),
                engine.store.url,
            )
            if self._recover:
                await self._recover_executions(self._running)
        executions = self._running
        self._users += 1
        try:
            yield executions
        finally:
            self._users -= 1
            if self._users == 0:
                self._running = None
                await executions.aclose()
                if self._engine is None:
                    await executions.engine.close()

    @staticmethod
    async def _recover_executions(executions: Executions) -> None:
        try:
            count = await executions.recover()
        except dwf.DwfError as exc:  # a broken store is reported by the first tool call too
            logger.warning("could not look for executions to recover: %s", exc)
            return
        if count:
            logger.info("checking %d execution(s) left running or due by a stopped process", count)

    @contextlib.asynccontextmanager
    async def _lifespan(self, _server: Server[Executions]) -> AsyncIterator[Executions]:
        async with self.running() as executions:
            yield executions

    # ------------------------------------------------------------------------------ handlers

    async def _list_tools(
        self,
        ctx: ServerRequestContext[Executions, Any],
        params: types.PaginatedRequestParams | None,
    ) -> types.ListToolsResult:
        return self._listing

    def _input_schema(self, name: str) -> Mapping[str, Any] | None:
        spec = self.tools.get(name)
        return spec.input_schema if spec is not None else None
