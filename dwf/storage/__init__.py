"""Where executions are kept: one async protocol (:class:`Store`), several backends, chosen by URL.

==========================================  =====================================================
``memory://``                               :class:`MemoryStore`, nothing survives the process
``sqlite:///relative.db``                   :class:`SQLiteStore`, relative to the current directory
``sqlite:////absolute/path.db``             :class:`SQLiteStore`; also a plain path ``x.db``
``postgresql://user@host/db``               the PostgreSQL store (``pip install "dwf[postgres]"``)
``redis://host:6379/0``                     the Redis store (``pip install "dwf[redis]"``)
==========================================  =====================================================

With no URL, :func:`open_store` uses ``$DWF_STORE``, else :func:`default_store_url`.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from dwf.errors import ConfigurationError
from dwf.storage._options import redact
from dwf.storage.base import (
    TERMINAL_STATUSES,
    AuditEntry,
    Checkpoint,
    ExecutionRecord,
    ExecutionSummary,
    Status,
    Store,
)
from dwf.storage.memory import MemoryStore
from dwf.storage.sqlite import SQLITE_SUFFIXES, SQLiteStore, sqlite_url

__all__ = [
    "TERMINAL_STATUSES",
    "AuditEntry",
    "Checkpoint",
    "ExecutionRecord",
    "ExecutionSummary",
    "MemoryStore",
    "SQLiteStore",
    "Status",
    "Store",
    "default_store_url",
    "open_store",
]

KNOWN_SCHEMES = ("memory://", "sqlite:///", "postgresql://", "postgres://", "redis://", "rediss://")

# scheme -> (module, store class, extra, top-level modules that the extra installs)
_POSTGRES = ("dwf.storage.postgres", "PostgresStore", "postgres", ("psycopg", "psycopg_pool"))
_REDIS = ("dwf.storage.redis", "RedisStore", "redis", ("redis",))
_OPTIONAL_BACKENDS = {
    "postgresql": _POSTGRES,
    "postgres": _POSTGRES,
    "redis": _REDIS,
    "rediss": _REDIS,
}
_DISPLAY = {"postgres": "PostgreSQL", "redis": "Redis"}


def open_store(url: str | None = None) -> Store:
    """Open the store a URL names. Opening is cheap; the first call connects.

    Args:
        url: ``memory://``, ``sqlite:///relative.db``, ``sqlite:////abs/path.db`` (options
            ``?synchronous=full|normal|off``, ``?busy_timeout=SECONDS`` and ``?io=auto|thread``),
            a path ending in
            ``.db``/``.sqlite``/``.sqlite3``, ``postgresql://...`` or ``redis://...``.
            ``None`` means ``$DWF_STORE`` if set, else :func:`default_store_url`.

    Raises:
        ConfigurationError: Unknown scheme, bad options, or the backend's extra is not installed.
    """
    if url is None:
        url = os.environ.get("DWF_STORE") or default_store_url()
    url = url.strip()
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == "memory":
        if url.lower() != "memory://":
            raise ConfigurationError(
                f"the memory store takes no path or options: write 'memory://', not {url!r}",
                url=url,
            )
        return MemoryStore()
    if scheme == "sqlite" or url.lower().startswith("sqlite:"):
        return SQLiteStore.from_url(url)
    if scheme in _OPTIONAL_BACKENDS:
        return _open_optional(scheme, url)
    if not scheme and url.partition("?")[0].lower().endswith(SQLITE_SUFFIXES):
        return SQLiteStore.from_url(url)
    raise ConfigurationError(
        f"unknown store URL {redact(url)!r}. Known: {', '.join(KNOWN_SCHEMES)}"
        f" or a file path ending in {', '.join(SQLITE_SUFFIXES)}",
        url=redact(url),
    )


def default_store_url() -> str:
    """The store used when nothing is configured: ``dwf.db`` in the user's data directory.

    ``$XDG_DATA_HOME/dwf`` (or ``~/.local/share/dwf``) on Linux, ``~/Library/Application
    Support/dwf`` on macOS, ``%LOCALAPPDATA%\\dwf`` on Windows. The directory is created when the
    store opens, not here.
    """
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = str(Path.home() / "Library" / "Application Support")
    else:
        xdg = os.environ.get("XDG_DATA_HOME", "")
        # The XDG spec says to ignore a relative value.
        base = xdg if os.path.isabs(xdg) else str(Path.home() / ".local" / "share")
    return sqlite_url(os.path.join(base, "dwf", "dwf.db"))


def _open_optional(scheme: str, url: str) -> Store:
    module_name, class_name, extra, provides = _OPTIONAL_BACKENDS[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = exc.name or ""
        if missing != module_name and missing.split(".")[0] not in provides:
            raise  # a real bug inside the backend, not a missing extra
        raise ConfigurationError(
            f'the {_DISPLAY[extra]} store needs the {extra} extra: pip install "dwf[{extra}]"',
            url=redact(url),
            missing=missing,
        ) from exc
    store: Store = getattr(module, class_name)(url)
    return store
