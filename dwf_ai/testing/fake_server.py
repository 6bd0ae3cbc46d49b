"""A local fake of the OpenAI and Anthropic HTTP APIs, so tests run the real SDKs.

:class:`FakeProvider` is an ASGI app (Starlette) serving

* ``POST /v1/chat/completions`` — OpenAI Chat Completions, plain and ``stream: true`` (SSE chunks
  with tool-call deltas and a final usage chunk);
* ``POST /v1/messages`` — Anthropic Messages, plain and streaming (``message_start``,
  ``content_block_start/delta/stop``, ``message_delta``, ``message_stop``);
* ``POST /v1/moderations`` — OpenAI moderation, with scripted results (unscripted: not flagged).

Answers are scripted turns (the shapes of :mod:`dwf_ai.testing.models`) taken from a queue per
model name, else from the shared queue, plus :class:`FakeError` to answer with an HTTP error in
the provider's own shape (429 with ``Retry-After``, 500, 401, 404, 400 context too long, ...).
A request with nothing left to answer gets a 400 that says so. Every request is recorded in
:attr:`FakeProvider.requests`, with its credential kept apart and masked in the headers. Nothing is
logged.

Use it in-process (``fake.openai_model()``, ``fake.anthropic_model()`` or ``fake.http_client()``
with ``httpx2.ASGITransport``) or on a loopback port (``with fake.serve() as url: ...``).

A structured-output request to Anthropic forces a tool (``tool_choice``); a scripted text turn
whose content is a JSON object is then answered as a call of that tool (the named one, or the last
tool listed for ``"any"``), as a real model would.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from dwf_ai.models.base import ModerationResult
from dwf_ai.testing import _fake_wire as wire
from dwf_ai.testing.models import (
    ModerationTurn,
    ScriptedTurn,
    Turn,
    moderation_result,
    normalize_turn,
)

if TYPE_CHECKING:
    import httpx2

    from dwf_ai.models.anthropic import AnthropicModel
    from dwf_ai.models.openai import OpenAIModel

__all__ = ["FakeError", "FakeProvider", "RecordedRequest"]

#: The root URL of the in-process transport (never resolved: requests go straight to the app).
IN_PROCESS_URL = "http://fake-provider.invalid"


@dataclass(frozen=True)
class FakeError:
    """An HTTP error to answer with, in the shape of the provider the request went to.

    Args:
        status: The HTTP status (429, 500, 401, 404, 400, 529, ...).
        message: The provider's message; a realistic default per status otherwise.
        code: OpenAI's ``error.code`` (e.g. ``"context_length_exceeded"``, which also picks a
            "prompt is too long" message for Anthropic).
        retry_after: Seconds for the ``Retry-After`` header.
        headers: More response headers.
    """

    status: int
    message: str | None = None
    code: str | None = None
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def context_length_exceeded(cls) -> FakeError:
        return cls(400, code="context_length_exceeded")


@dataclass(frozen=True)
class RecordedRequest:
    """A request the fake received. ``headers`` has the credential masked as ``***``; the
    credential itself (``Authorization: Bearer`` or ``x-api-key``) is in ``api_key``."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    api_key: str | None = field(default=None, repr=False)

    @property
    def model(self) -> str | None:
        value = self.body.get("model")
        return value if isinstance(value, str) else None

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))


_Queued = ScriptedTurn | FakeError


class FakeProvider:
    """A scripted fake of the OpenAI and Anthropic APIs (see the module docstring).

    Args:
        turns: Turns for the shared queue.
        api_key: When set, a request without exactly this key gets the provider's 401.
        moderations: Results for ``/v1/moderations``, in order.
    """

    def __init__(
        self,
        turns: Iterable[Turn | FakeError] = (),
        *,
        api_key: str | None = None,
        moderations: Iterable[ModerationTurn | FakeError] = (),
    ) -> None:
        self._queues: dict[str | None, deque[_Queued]] = {None: deque()}
        self._moderations: deque[ModerationResult | FakeError] = deque()
        self._api_key = api_key
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.script(turns)
        self.script_moderation(moderations)
        self._app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/moderations", self._moderate, methods=["POST"]),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    # -- scripting ------------------------------------------------------------------------

    def script(
        self, turns: Iterable[Turn | FakeError], *, model: str | None = None
    ) -> FakeProvider:
        """Queue ``turns`` for requests to ``model`` (any model when ``None``)."""
        queue = self._queues.setdefault(model, deque())
        for i, turn in enumerate(turns):
            if isinstance(turn, FakeError):
                queue.append(turn)
            elif isinstance(turn, BaseException):
                raise ValueError(f"turn {i + 1}: use FakeError(status) for an HTTP error")
            else:
                queue.append(normalize_turn(turn, f"turn {i + 1}"))
        return self

    def script_moderation(self, results: Iterable[ModerationTurn | FakeError]) -> FakeProvider:
        """Queue moderation results: ``True``/``False``, flagged category names, a
        :class:`ModerationResult` or a :class:`FakeError`."""
        for result in results:
            if isinstance(result, FakeError):
                self._moderations.append(result)
                continue
            value = moderation_result(result)
            if isinstance(value, BaseException):
                raise ValueError("use FakeError(status) for a moderation HTTP error")
            self._moderations.append(value)
        return self

    def remaining(self, model: str | None = None) -> int:
        """Turns left in ``model``'s queue (the shared one when ``None``)."""
        return len(self._queues.get(model, ()))

    # -- wiring ---------------------------------------------------------------------------

    def http_client(self) -> httpx2.AsyncClient:
        """An ``httpx2.AsyncClient`` that sends every request to this app, in-process."""
        import httpx2

        return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=self))

    def openai_model(
        self,
        name: str = "gpt-4o-mini",
        *,
        url: str | None = None,
        api_key: str | None = "sk-fake-openai-key",
        max_retries: int = 2,
        **options: Any,
    ) -> OpenAIModel:
        """An :class:`OpenAIModel` talking to this fake: in-process, or at ``url`` (the root
        that :meth:`serve` yields)."""
        from dwf_ai.models.config import ProviderSettings
        from dwf_ai.models.openai import OpenAIModel

        settings = ProviderSettings(
            api_key=api_key, base_url=f"{url or IN_PROCESS_URL}/v1", max_retries=max_retries
        )
        client = None if url else self.http_client()
        return OpenAIModel(name, settings, http_client=client, **options)

    def anthropic_model(
        self,
        name: str = "claude-sonnet-5",
        *,
        url: str | None = None,
        api_key: str | None = "sk-ant-fake-anthropic-key",
        max_retries: int = 2,
        **options: Any,
    ) -> AnthropicModel:
        """An :class:`AnthropicModel` talking to this fake: in-process, or at ``url``."""
        from dwf_ai.models.anthropic import AnthropicModel
        from dwf_ai.models.config import ProviderSettings

        settings = ProviderSettings(
            api_key=api_key, base_url=url or IN_PROCESS_URL, max_retries=max_retries
        )
        client = None if url else self.http_client()
        return AnthropicModel(name, settings, http_client=client, **options)

    @contextmanager
    def serve(self, host: str = "127.0.0.1") -> Iterator[str]:
        """Serve this app with uvicorn on a free loopback port in a background thread; yields
        the root URL (``http://127.0.0.1:PORT``). Needs the ``uvicorn`` package."""
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((host, 0))
        # Listening before the server starts lets clients connect at once: the kernel queues
        # them until uvicorn accepts, so nothing has to wait for "started".
        sock.listen(64)
        port = sock.getsockname()[1]
        config = uvicorn.Config(self, lifespan="off", access_log=False, log_config=None)
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="dwf-fake-provider", daemon=True
        )
        thread.start()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()

    # -- routes ---------------------------------------------------------------------------

    async def _chat(self, request: Request) -> Response:
        body, failure = await self._receive(request, "openai")
        if failure is not None:
            return failure
        turn = self._next(body)
        if not isinstance(turn, ScriptedTurn):
            return self._failure("openai", turn, body)
        n = next(self._ids)
        if body.get("stream"):
            return _event_stream(wire.openai_stream(n, turn, body), named=False)
        return JSONResponse(wire.openai_completion(n, turn, body))

    async def _messages(self, request: Request) -> Response:
        body, failure = await self._receive(request, "anthropic")
        if failure is not None:
            return failure
        turn = self._next(body)
        if not isinstance(turn, ScriptedTurn):
            return self._failure("anthropic", turn, body)
        message = wire.anthropic_message(next(self._ids), turn, body)
        if body.get("stream"):
            return _event_stream(wire.anthropic_stream(message), named=True)
        return JSONResponse(wire.strip_raw(message))

    async def _moderate(self, request: Request) -> Response:
        body, failure = await self._receive(request, "openai")
        if failure is not None:
            return failure
        with self._lock:
            result = self._moderations.popleft() if self._moderations else ModerationResult(False)
        if isinstance(result, FakeError):
            return self._error("openai", result, str(body.get("model", "")))
        return JSONResponse(wire.moderation_response(next(self._ids), result, body))

    # -- helpers --------------------------------------------------------------------------

    async def _receive(
        self, request: Request, flavour: str
    ) -> tuple[dict[str, Any], Response | None]:
        raw = await request.body()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            record = RecordedRequest(request.url.path, {}, wire.masked(request.headers))
            self.requests.append(record)
            return {}, self._error(flavour, FakeError(400, "The body is not a JSON object."), "")
        key = wire.credential(request.headers)
        self.requests.append(
            RecordedRequest(request.url.path, body, wire.masked(request.headers), key)
        )
        if self._api_key is not None and key != self._api_key:
            model = str(body.get("model", ""))
            message = "invalid x-api-key" if flavour == "anthropic" else None
            return body, self._error(flavour, FakeError(401, message), model)
        return body, None

    def _next(self, body: dict[str, Any]) -> _Queued | None:
        model = str(body.get("model", ""))
        with self._lock:
            for queue_name in (model, None):
                queue = self._queues.get(queue_name)
                if queue:
                    return queue.popleft()
        return None

    def _failure(self, flavour: str, turn: FakeError | None, body: dict[str, Any]) -> Response:
        model = str(body.get("model", ""))
        if turn is None:
            turn = FakeError(
                400,
                f"FakeProvider has no scripted turn left for model {model!r} (request "
                f"{len(self.requests)}). Script more turns with fake.script([...]).",
            )
        return self._error(flavour, turn, model)

    def _error(self, flavour: str, error: FakeError, model: str) -> Response:
        request_id = f"req_fake_{next(self._ids)}"
        body = wire.error_body(flavour, error.status, error.message, error.code, model, request_id)
        headers = dict(error.headers)
        headers["x-request-id" if flavour == "openai" else "request-id"] = request_id
        if error.retry_after is not None:
            seconds = error.retry_after
            headers["retry-after"] = str(int(seconds)) if seconds == int(seconds) else str(seconds)
        return JSONResponse(body, status_code=error.status, headers=headers)


def _event_stream(events: Iterable[dict[str, Any]], *, named: bool) -> StreamingResponse:
    return StreamingResponse(wire.sse_body(events, named=named), media_type="text/event-stream")
