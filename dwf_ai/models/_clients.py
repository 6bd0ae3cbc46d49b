"""One SDK client per event loop, closed when its loop shuts down.

An SDK client pools HTTP connections, and a pooled connection belongs to the event loop that
opened it. dwf may drive one model object from several loops (``run_sync`` starts one per call),
so each loop gets its own client, made on first use.

The client must also be closed *on its own loop*: the SDKs' ``__del__`` schedules ``aclose()`` on
whatever loop runs at garbage collection, which fails ("Event loop is closed") for connections of
a loop that has ended. So each client we make is tied to a small async generator; ``asyncio.run``
and ``asyncio.Runner`` (and so pytest-asyncio and anyio) close every async generator before they
close the loop (``loop.shutdown_asyncgens()``), and closing this one closes the client.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from dwf_ai.models.config import (
    ProviderConfig,
    ProviderSettings,
    ResolvedSettings,
    display_url,
    resolve_settings,
)

if TYPE_CHECKING:
    import httpx2

log = logging.getLogger("dwf.ai")


class _Closable(Protocol):
    def is_closed(self) -> bool: ...

    def close(self) -> Awaitable[None]: ...


C = TypeVar("C", bound=_Closable)


class PerLoop(Generic[C]):
    """Clients by event loop. ``owned=False`` (a caller-supplied HTTP client) never closes them."""

    def __init__(self, make: Callable[[], C], *, owned: bool = True) -> None:
        self._make = make
        self._owned = owned
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[C, AsyncGenerator[None, None] | None]
        ] = weakref.WeakKeyDictionary()

    async def get(self) -> C:
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is not None:
            return entry[0]
        # A client can keep its loop alive through its connections, so the weak key alone would
        # never let go of a finished loop.
        for finished in [other for other in self._clients if other.is_closed()]:
            del self._clients[finished]
        client = self._make()
        closer = _close_with_loop(client) if self._owned else None
        self._clients[loop] = (client, closer)  # before awaiting: one client per loop
        if closer is not None:
            await closer.__anext__()  # registers it with the loop's async generator hooks
        return client

    async def aclose(self) -> None:
        """Close the client of the running loop now, and forget every client."""
        entry = self._clients.get(asyncio.get_running_loop())
        self._clients = weakref.WeakKeyDictionary()
        if entry is not None and entry[1] is not None:
            await entry[1].aclose()


class SDKModel(Generic[C]):
    """What the models on an official SDK share: their provider's settings, resolved on first
    use, and one SDK client per event loop (:class:`PerLoop`), made by :meth:`_make_client`."""

    #: The provider: its section of :class:`ProviderConfig`, its environment variables.
    provider: ClassVar[str]

    def __init__(
        self,
        model_name: str,
        config: ProviderConfig | ProviderSettings | None,
        http_client: httpx2.AsyncClient | None,
    ) -> None:
        self.name = model_name
        own = getattr(config, self.provider) if isinstance(config, ProviderConfig) else config
        self._settings: ProviderSettings = own or ProviderSettings()
        self._http_client = http_client
        self._clients: PerLoop[C] = PerLoop(self._make_client, owned=http_client is None)
        self._resolved: ResolvedSettings | None = None

    def __repr__(self) -> str:
        base_url = display_url(self._settings.base_url)
        return f"{type(self).__name__}({self.name!r}, base_url={base_url!r})"

    async def aclose(self) -> None:
        """Close the HTTP connections this model opened on the running loop."""
        await self._clients.aclose()

    def _make_client(self) -> C:
        raise NotImplementedError  # abstract: each SDK's client

    def _settings_now(self) -> ResolvedSettings:
        if self._resolved is None:
            self._resolved = resolve_settings(self.provider, self._settings)
        return self._resolved

    def _client_kwargs(self, settings: ResolvedSettings, api_key: str) -> dict[str, Any]:
        """The SDK client's arguments that both SDKs take alike."""
        kwargs: dict[str, Any] = {
            "api_key": api_key,
            "base_url": settings.base_url,
            "max_retries": settings.max_retries,
        }
        if settings.timeout is not None:
            kwargs["timeout"] = settings.timeout
        if self._http_client is not None:
            kwargs["http_client"] = self._http_client
        log.debug(
            "%s client: base_url=%s max_retries=%d",
            self.provider,
            display_url(settings.base_url) or "default",
            settings.max_retries,
        )
        return kwargs


async def _close_with_loop(client: _Closable) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        if not client.is_closed():
            await client.close()
