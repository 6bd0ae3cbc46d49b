"""The engine side of a worker process, whatever the queue: one event loop in a thread of its
own, one engine shared by every job of the process, and housekeeping every few seconds.

Queue adapters that run jobs in threads (Celery's pools) hand coroutines to the loop with
:meth:`WorkerHost.call`; connection pools and lease renewal outlive single jobs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import random
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dwf.errors import DwfError

if TYPE_CHECKING:
    from dwf.dsl.model import WorkflowDefinition
    from dwf.engine import Engine
    from dwf.extensions import Registry

__all__ = ["HostSlot", "WorkerHost", "WorkerSettings"]

logger = logging.getLogger("dwf")

T = TypeVar("T")


@dataclass
class WorkerSettings:
    """What a worker process needs to build its engine (see ``make_celery_app``)."""

    store_url: str | None
    services_files: Sequence[str | os.PathLike[str]] = ()
    workflows_paths: Sequence[str | os.PathLike[str]] = ()
    lease_seconds: float = 30.0
    recover_interval: float = 5.0
    pending_after: float | None = None
    extensions: bool = True


class WorkerHost:
    """One event loop thread and one engine in one worker process."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.engine = _build_engine(settings)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="dwf-engine-loop", daemon=True
        )
        self._thread.start()
        self._housekeeping: concurrent.futures.Future[None] | None = None

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the engine's loop and wait for its result (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def start_housekeeping(self) -> None:
        """Start :meth:`Engine.tick` every ``recover_interval`` seconds (once; 0: never)."""
        if self._housekeeping is None and self.settings.recover_interval > 0:
            self._housekeeping = asyncio.run_coroutine_threadsafe(self._keep_house(), self.loop)

    def close(self) -> None:
        if self._housekeeping is not None:
            self.loop.call_soon_threadsafe(self._housekeeping.cancel)
        try:
            asyncio.run_coroutine_threadsafe(self.engine.close(), self.loop).result(timeout=10)
        except Exception:  # shutting down: a store that will not close is not worth a traceback
            logger.debug("closing the dwf engine failed", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)

    async def _keep_house(self) -> None:
        interval = self.settings.recover_interval
        while True:
            try:
                results = await self.engine.tick(pending_after=self.settings.pending_after)
            except DwfError as exc:
                logger.error(
                    "dwf housekeeping failed: %s; trying again in %g s", exc.message, interval
                )
            except Exception:
                logger.exception("dwf housekeeping failed; trying again in %g s", interval)
            else:
                for result in results:
                    logger.info(
                        "dwf housekeeping: execution %s is %s", result.execution_id, result.status
                    )
            # Jitter keeps the workers of a fleet from scanning the store in lockstep.
            await asyncio.sleep(interval * random.uniform(0.75, 1.25))


class HostSlot:
    """The :class:`WorkerHost` of the current process, created on first use; a forked child
    (a prefork pool process) gets one of its own, never its parent's."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._host: WorkerHost | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def get(self) -> WorkerHost:
        with self._lock:
            if self._host is None or self._pid != os.getpid():
                self._host = WorkerHost(self.settings)
                self._pid = os.getpid()
            return self._host

    def start(self) -> None:
        """Create this process's host and start its housekeeping."""
        self.get().start_housekeeping()

    def close(self) -> None:
        with self._lock:
            host, self._host = self._host, None
            mine = self._pid == os.getpid()
        if host is not None and mine:
            host.close()


def _build_engine(settings: WorkerSettings) -> Engine:
    from dwf.engine import Engine
    from dwf.extensions import Registry, default_registry
    from dwf.services import Services

    registry = Registry.with_installed_extensions() if settings.extensions else default_registry()
    return Engine(
        settings.store_url,
        services=Services.from_files(list(settings.services_files)),
        registry=registry,
        workflows=_load_workflows(settings.workflows_paths, registry),
        lease_seconds=settings.lease_seconds,
    )


def _load_workflows(
    paths: Sequence[str | os.PathLike[str]], registry: Registry
) -> dict[str, WorkflowDefinition]:
    from dwf.dsl import load_workflow

    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml")))
        else:
            files.append(path)
    catalog: dict[str, WorkflowDefinition] = {}
    for file in files:
        definition = load_workflow(file, registry=registry)
        catalog.setdefault(definition.id, definition)
    return catalog
