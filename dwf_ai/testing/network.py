"""Make real network calls impossible in tests.

:func:`block_network` patches the socket layer so that connecting to anything but this machine
(127.0.0.0/8, ::1, ``localhost``, Unix sockets) raises :class:`NetworkBlockedError`, and so does
resolving a host name that is not local. In-process transports and loopback servers (the fake
provider on 127.0.0.1) keep working.

dwf's own tests block the network for every test in ``tests/dwf_ai/conftest.py``; to do the same
in your project::

    import pytest
    from dwf_ai.testing import block_network

    @pytest.fixture(autouse=True)
    def _no_network(request):
        if request.node.get_closest_marker("allow_network"):
            yield
            return
        with block_network():
            yield
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["NetworkBlockedError", "block_network"]

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


class NetworkBlockedError(RuntimeError):
    """A test tried to reach the network. Not an ``OSError``, so no client mistakes it for a
    flaky connection and retries."""


_lock = threading.Lock()
_depth = 0
_allowed: list[frozenset[str]] = []
_originals: dict[str, Any] = {}


@contextmanager
def block_network(*, allow_hosts: Iterable[str] = ()) -> Iterator[None]:
    """Within the block, non-local connections and name lookups raise
    :class:`NetworkBlockedError`. Nests; ``allow_hosts`` adds host names or addresses."""
    global _depth
    extra = frozenset(h.lower() for h in allow_hosts)
    with _lock:
        if _depth == 0:
            _install()
        _depth += 1
        _allowed.append(extra)
    try:
        yield
    finally:
        with _lock:
            _allowed.remove(extra)
            _depth -= 1
            if _depth == 0:
                _uninstall()


def _install() -> None:
    _originals["connect"] = socket.socket.connect
    _originals["connect_ex"] = socket.socket.connect_ex
    _originals["getaddrinfo"] = socket.getaddrinfo
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        _check(self.family, address)
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check(self.family, address)
        return original_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_local(host):
            raise NetworkBlockedError(
                f"A test tried to look up {_text(host)!r}; the network is blocked in tests. Use "
                "the fake provider (dwf_ai.testing.FakeProvider) or mark the test allow_network."
            )
        return original_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = getaddrinfo


def _uninstall() -> None:
    socket.socket.connect = _originals.pop("connect")  # type: ignore[method-assign]
    socket.socket.connect_ex = _originals.pop("connect_ex")  # type: ignore[method-assign]
    socket.getaddrinfo = _originals.pop("getaddrinfo")


def _check(family: int, address: Any) -> None:
    if family not in (socket.AF_INET, socket.AF_INET6):
        return  # Unix sockets and the like stay on this machine
    host = address[0] if isinstance(address, tuple) and address else address
    if not _is_local(host):
        port = address[1] if isinstance(address, tuple) and len(address) > 1 else "?"
        raise NetworkBlockedError(
            f"A test tried to connect to {_text(host)}:{port}; the network is blocked in tests. "
            "Use the fake provider (dwf_ai.testing.FakeProvider) or mark the test allow_network."
        )


def _is_local(host: Any) -> bool:
    name = _text(host).strip("[]").lower()
    if name in _LOCAL_NAMES or any(name in allowed for allowed in list(_allowed)):
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def _text(host: Any) -> str:
    return host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
