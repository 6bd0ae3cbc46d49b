"""Checks every HTTP request passes before it reaches a route: Host, Origin, bearer token.

* **Host** (DNS rebinding): a page on ``evil.example`` whose name resolves to 127.0.0.1 sends
  ``Host: evil.example``; only the names the server is reached by are accepted (421 otherwise).
* **Origin**: browsers send it on cross-site requests; only loopback origins and the configured
  ones are accepted (403). Requests without Origin (non-browser clients) pass.
* **Bearer token**, when configured: ``Authorization: Bearer <token>``, compared in constant time
  (401 with ``WWW-Authenticate``). The token is never logged.

``/healthz`` is exempt, so load balancers and probes can reach it by any name.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["LOOPBACK_HOSTS", "RequestChecks", "SecurityPolicy", "default_policy"]

logger = logging.getLogger("dwf.mcp")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
EXEMPT_PATHS = frozenset({"/healthz"})


@dataclass(frozen=True)
class SecurityPolicy:
    """Which Host and Origin values are accepted, and the bearer token (``None``: no auth).

    Hosts are names (any port) or ``name:port``; ``allowed_hosts=None`` turns the Host check
    off. Origins are exact (``https://app.example.com``) or end in ``:*`` (any port).
    """

    allowed_hosts: tuple[str, ...] | None = LOOPBACK_HOSTS
    allowed_origins: tuple[str, ...] = ()
    token: str | None = field(default=None, repr=False)

    def host_ok(self, host: str | None) -> bool:
        if self.allowed_hosts is None:
            return True
        if not host:
            return False
        host = host.lower()
        name = _hostname(host)
        for allowed in self.allowed_hosts:
            allowed = allowed.lower()
            if host == allowed or name == allowed:
                return True
            if allowed.endswith(":*") and name == allowed[:-2]:
                return True
        return False

    def origin_ok(self, origin: str | None) -> bool:
        if origin is None:
            return True
        origin = origin.lower().rstrip("/")
        for allowed in self.allowed_origins:
            allowed = allowed.lower().rstrip("/")
            if origin == allowed:
                return True
            if allowed.endswith(":*") and origin.startswith(allowed[:-1]):
                rest = origin[len(allowed) - 1 :]
                if rest.isdigit():
                    return True
        return False

    def token_ok(self, authorization: str | None) -> bool:
        if self.token is None:
            return True
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(value.strip().encode(), self.token.encode())


def _hostname(host: str) -> str:
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "::", "[::]")


def _is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_policy(
    host: str,
    *,
    allowed_hosts: Sequence[str] = (),
    allowed_origins: Sequence[str] = (),
    token: str | None = None,
) -> SecurityPolicy:
    """The policy for a server bound to ``host``: its loopback names (and ``host`` itself), the
    extra hosts, loopback origins on any port plus the extra origins, and the token.

    Bound to every interface (``0.0.0.0``) without ``allowed_hosts``, the Host check is off (the
    server cannot know its public names); the token is then what protects it.
    """
    hosts: tuple[str, ...] | None
    if _is_wildcard(host) and not allowed_hosts:
        hosts = None
        logger.warning(
            "listening on all interfaces without --allowed-host: Host header checks are off; "
            "use --allowed-host NAME and --token"
        )
    else:
        named = () if _is_wildcard(host) or _is_loopback(host) else (_bracket(host),)
        hosts = (*LOOPBACK_HOSTS, *named, *allowed_hosts)
    loopback_origins = [
        f"{scheme}://{name}{port}"
        for scheme in ("http", "https")
        for name in LOOPBACK_HOSTS
        for port in ("", ":*")
    ]
    return SecurityPolicy(
        allowed_hosts=hosts,
        allowed_origins=(*loopback_origins, *allowed_origins),
        token=token,
    )


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class RequestChecks:
    """ASGI middleware applying a :class:`SecurityPolicy` to every HTTP request."""

    def __init__(self, app: ASGIApp, policy: SecurityPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _route_path(scope) in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope["headers"])
        client = (scope.get("client") or ("?",))[0]
        if not self.policy.host_ok(headers.get("host")):
            logger.warning("rejected a request for Host %r from %s", headers.get("host"), client)
            await _deny(send, 421, "misdirected_request", "Invalid Host header")
            return
        if not self.policy.origin_ok(headers.get("origin")):
            logger.warning("rejected a request from Origin %r (%s)", headers.get("origin"), client)
            await _deny(send, 403, "forbidden", "Invalid Origin header")
            return
        if not self.policy.token_ok(headers.get("authorization")):
            logger.warning("rejected a request without a valid bearer token from %s", client)
            await _deny(
                send,
                401,
                "unauthorized",
                "Send 'Authorization: Bearer <token>' with the server's token",
                [(b"www-authenticate", b'Bearer realm="dwf"')],
            )
            return
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in raw:
        out.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))
    return out


async def _deny(
    send: Send,
    status: int,
    error: str,
    message: str,
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    body = json.dumps({"error": error, "message": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
