"""Serving over Streamable HTTP: a Starlette application.

Routes:

* ``/mcp``: the MCP endpoint (the SDK's Streamable HTTP transport, every protocol era);
* ``GET /healthz``: ``{"status": "ok"}``, unauthenticated;
* ``GET /executions/{id}/events``: an execution's lifecycle events as Server-Sent Events.

Host, Origin and bearer-token checks guard every route but ``/healthz`` (:mod:`._http_checks`);
request bodies are limited in size. The app can be mounted inside your own Starlette or FastAPI
application; give the parent its lifespan, which starts the MCP session manager and the engine::

    mcp_app = create_app(server, token=os.environ["DWF_MCP_TOKEN"])
    app = Starlette(routes=[Mount("/dwf", app=mcp_app)], lifespan=mcp_app.router.lifespan_context)
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import dwf
from mcp_server._http_checks import RequestChecks, default_policy
from mcp_server.executions import is_terminal

if TYPE_CHECKING:
    from dwf import ExecutionRecord
    from mcp_server.executions import Executions
    from mcp_server.server import WorkflowServer

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "create_app"]

logger = logging.getLogger("dwf.mcp")

#: Largest accepted request body; tool arguments are small, so 1 MiB is generous.
DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024
#: A comment line on an idle event stream, so proxies keep it open.
KEEPALIVE_SECONDS = 15.0
_END_EVENTS = frozenset({"workflow.completed", "workflow.failed", "workflow.cancelled"})


def create_app(
    server: WorkflowServer,
    *,
    host: str = "127.0.0.1",
    token: str | None = None,
    allowed_origins: Sequence[str] = (),
    allowed_hosts: Sequence[str] = (),
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    path: str = "/mcp",
) -> Starlette:
    """The HTTP application serving ``server``.

    Args:
        server: the workflows to serve.
        host: the address the app is bound to; decides the accepted Host names (loopback names
            always; the bound name too; every name when bound to ``0.0.0.0`` without
            ``allowed_hosts``).
        token: require ``Authorization: Bearer <token>`` on every route but ``/healthz``.
        allowed_origins: browser origins accepted besides loopback ones (``https://x.y`` or
            ``https://x.y:*``).
        allowed_hosts: Host names accepted besides the loopback ones.
        max_request_bytes: larger request bodies get 413.
        path: where the MCP endpoint is.
    """
    policy = default_policy(
        host, allowed_hosts=allowed_hosts, allowed_origins=allowed_origins, token=token
    )
    manager = StreamableHTTPSessionManager(
        app=server.mcp,
        # Host and Origin are checked for every route by RequestChecks, before the SDK sees them.
        security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        max_request_body_size=max_request_bytes,
    )
    endpoint = StreamableHTTPASGIApp(manager)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            auth = " (bearer token required)" if token else ""
            logger.info("MCP endpoint ready at %s%s", path, auth)
            yield

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def events(request: Request) -> Response:
        return await _event_stream(server, request)

    return Starlette(
        routes=[
            Route(path, endpoint=endpoint),
            Route("/healthz", endpoint=healthz, methods=["GET"]),
            Route("/executions/{execution_id}/events", endpoint=events, methods=["GET"]),
        ],
        middleware=[Middleware(RequestChecks, policy=policy)],
        lifespan=lifespan,
    )


# ---------------------------------------------------------------------------------- events


async def _event_stream(server: WorkflowServer, request: Request) -> Response:
    """Replay what this server saw of the execution (after ``Last-Event-ID``), then follow it
    live until it completes, fails or is cancelled. A halted execution keeps the stream open:
    a resume continues it. Executions run by another process are followed through the store."""
    try:
        executions = server.executions
    except RuntimeError:
        return JSONResponse({"error": "unavailable", "message": "server not started"}, 503)
    execution_id = request.path_params["execution_id"]
    try:
        record = await executions.record(execution_id)
    except dwf.ExecutionNotFound as exc:
        return JSONResponse({"error": "not_found", "message": exc.message}, 404)
    after = _last_event_id(request)
    subscription = executions.subscribe(execution_id, after=after)
    known = executions.channel(execution_id).seq > 0

    async def stream() -> AsyncIterator[str]:
        try:
            yield f"retry: {int(KEEPALIVE_SECONDS * 1000)}\n\n"
            if not known and not executions.running_here(execution_id):
                snapshot = _snapshot_event(record)
                if snapshot:
                    yield snapshot
                if is_terminal(str(record.status)):
                    return
            while True:
                item = await subscription.get(KEEPALIVE_SECONDS)
                if isinstance(item, tuple):
                    seq, event = item
                    yield f"id: {seq}\n{event.to_sse()}"
                    if event.type in _END_EVENTS and event.execution_id == execution_id:
                        return
                elif isinstance(item, TimeoutError):
                    yield ": keepalive\n\n"
                    if not executions.running_here(execution_id) and await _ended_elsewhere(
                        executions, execution_id
                    ):
                        latest = await executions.record(execution_id)
                        yield _snapshot_event(latest) or ""
                        return
        finally:
            subscription.close()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


async def _ended_elsewhere(executions: Executions, execution_id: str) -> bool:
    record = await executions.record(execution_id)
    return is_terminal(str(record.status))


def _last_event_id(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    try:
        return max(int(raw), 0)
    except ValueError:
        return 0


def _snapshot_event(record: ExecutionRecord) -> str | None:
    """An event describing a stored execution this server did not watch."""
    status = str(record.status)
    data = {
        "completed": {"output": record.output},
        "failed": {"error": record.error},
        "cancelled": {"error": record.error},
        "halted": {
            "halt": (record.halt or {}).get("data"),
            "prompt": (record.halt or {}).get("prompt"),
        },
    }.get(status)
    if data is None:
        return None
    event = dwf.Event(
        type=f"workflow.{status}",
        execution_id=record.id,
        workflow_id=record.workflow_id,
        timestamp=record.updated_at or time.time(),
        data=data,
    )
    return event.to_sse()
