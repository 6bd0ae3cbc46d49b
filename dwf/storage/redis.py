"""The Redis store: executions in hashes, listings in sorted sets, every write one Lua script.

A script runs without anything interleaved, so a checkpoint (owner check, the changed variables
and state keys, new entries, fields, version and index updates) is atomic, and a claim is a
compare-and-set on the version. Only the changed variables and state keys are written, so the
cost of a checkpoint does not grow with the size of the state. The key layout is described in
:mod:`dwf.storage._redis_lua`.

URL: ``redis://[user:password@]host:6379/0`` (``rediss://`` for TLS) with dwf's options
``?prefix=dwf`` (the key prefix; several stores can share one database) and ``?ttl=SECONDS``
(``30d``, ``12h``, ``15m`` also work): completed, failed and cancelled executions are deleted
that long after their last change. Pending, running and halted executions never expire. Every
other option goes to redis-py (``socket_timeout``, ``socket_connect_timeout``, which defaults to
5, ``max_connections``, ``ssl_*``).

Needs one Redis (or Valkey) server (tested with Redis 7); Redis Cluster is not supported,
because the scripts touch keys they compute. Keep persistence on (AOF with ``appendfsync
everysec`` or ``always``) when executions must survive a restart of the server. Failed calls are
not retried automatically, because a retried write could apply twice: a lost connection is a
StoreError.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dwf.errors import ConfigurationError, InvalidTransition, LeaseLost, StoreError
from dwf.storage import _redact
from dwf.storage import _redis_lua as lua
from dwf.storage._json import decode, encode, encode_nullable, require_name
from dwf.storage.base import (
    AuditEntry,
    Checkpoint,
    ExecutionRecord,
    ExecutionSummary,
    Status,
)

__all__ = ["RedisStore"]

SCHEMA_VERSION = 1
_OPTIONS = ("prefix", "ttl")
_DEFAULT_CONNECT_TIMEOUT = "5"
_TTL = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class RedisStore:
    """A :class:`~dwf.storage.base.Store` in a Redis database.

    Args:
        url: ``redis://host:port/db`` with optional ``?prefix=`` and ``?ttl=`` (see the module
            docstring) and redis-py options.
        clock: Returns the current Unix time; used for ``created_at`` and ``updated_at``.

    Raises:
        ConfigurationError: The URL is malformed or has a bad option.
    """

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        self.url = _redact(url)
        self._clock = clock
        self._redis_url, options = _parse_url(url, self.url)
        parts = urlsplit(self._redis_url)
        self.where = f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or '/0'}"
        self.prefix = options.get("prefix", "dwf")
        if not self.prefix:
            raise ConfigurationError(f"the prefix in {self.url!r} must not be empty", url=self.url)
        self.ttl: float | None = _ttl(options["ttl"], self.url) if "ttl" in options else None
        self._head = [f"{self.prefix}:", str(round((self.ttl or 0) * 1000))]
        self._client: aioredis.Redis | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Lock | None = None
        self._closer: AsyncGenerator[None, None] | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r})"

    # -- the protocol ------------------------------------------------------------------------

    async def create(self, record: ExecutionRecord, definition: str) -> ExecutionRecord:
        """Insert a new execution; see :meth:`dwf.storage.base.Store.create`."""
        created_at = float(record.created_at or self._clock())
        values: dict[str, Any] = {
            "workflow_id": record.workflow_id,
            "definition_hash": record.definition_hash,
            "status": Status(record.status).value,
            "input": encode(record.input, "the execution input", "input"),
            "position": encode(record.position, "the position", "position"),
            "output": encode_nullable(record.output, "the execution output", "output"),
            "halt": encode_nullable(record.halt, "the halt", "halt"),
            "error": encode_nullable(record.error, "the error", "error"),
            "parent_id": record.parent_id,
            "parent_step": record.parent_step,
            "owner": record.owner,
            "lease_expires_at": _float(record.lease_expires_at),
            "deadline": _float(record.deadline),
            "wake_at": _float(record.wake_at),
            "cancel_requested": "1" if record.cancel_requested else "0",
            "version": "1",
            "created_at": repr(created_at),
            "updated_at": repr(float(record.updated_at or created_at)),
        }
        fields = {name: value for name, value in values.items() if value is not None}
        variables = _encode_map(record.variables, "variable")
        state = _encode_map(record.state, "state key")
        args = [record.id, record.definition_hash, definition]
        for pairs in (fields.items(), variables, state):
            args.extend(_counted(pairs))
        if not await self._script("create", lua.CREATE, args):
            raise InvalidTransition(
                f"execution '{record.id}' already exists; choose another id",
                execution_id=record.id,
            )
        return _record(record.id, fields, variables, state)

    async def load(self, execution_id: str) -> ExecutionRecord | None:
        """The execution with its variables and state, or ``None``."""
        client = await self._connection()
        try:
            async with client.pipeline(transaction=True) as pipe:
                pipe.hgetall(self._key("exec", execution_id))
                pipe.hgetall(self._key("vars", execution_id))
                pipe.hgetall(self._key("state", execution_id))
                fields, variables, state = await pipe.execute()
        except RedisError as exc:
            raise self._error(exc) from exc
        if not fields:
            return None
        return _record(execution_id, fields, variables.items(), state.items())

    async def load_definition(self, definition_hash: str) -> str | None:
        """The definition text stored under that hash, or ``None``."""
        client = await self._connection()
        try:
            text = await client.get(self._key("def", definition_hash))
        except RedisError as exc:
            raise self._error(exc) from exc
        return None if text is None else str(text)

    async def checkpoint(self, checkpoint: Checkpoint) -> int:
        """Apply the checkpoint in one script; see :meth:`dwf.storage.base.Store.checkpoint`.

        Values are encoded before the script runs: a bad value writes nothing.
        """
        cp = checkpoint
        fields: list[tuple[str, str]] = []
        if cp.set_output:
            output = encode_nullable(cp.output, "the execution output", "output")
            fields.append(("output", output or ""))
        if cp.set_halt:
            fields.append(("halt", encode_nullable(cp.halt, "the halt", "halt") or ""))
        if cp.set_error:
            fields.append(("error", encode_nullable(cp.error, "the error", "error") or ""))
        if cp.set_wake_at:
            fields.append(("wake_at", _float(cp.wake_at) or ""))
        lists: list[Iterable[Any]] = [
            fields,
            _encode_map(cp.set_variables, "variable"),
            [(require_name(n, "variable"),) for n in cp.delete_variables],
            _encode_map(cp.set_state, "state key"),
            [(require_name(n, "state key"),) for n in cp.delete_state],
            [(_encode_entry(e),) for e in cp.entries],
        ]
        args = [
            cp.execution_id,
            cp.owner,
            Status(cp.status).value,
            encode(cp.position, "the position", "position"),
            _float(cp.lease_expires_at) or "",
            repr(float(self._clock())),
        ]
        for items in lists:
            args.extend(_counted(items))
        result = await self._script("checkpoint", lua.CHECKPOINT, args)
        if isinstance(result, list):
            _, exists, owner, status = result
            raise _lease_lost(cp.execution_id, cp.owner, bool(exists), owner, status)
        return int(result)

    async def claim(
        self,
        execution_id: str,
        *,
        owner: str,
        lease_expires_at: float,
        expected_version: int,
    ) -> ExecutionRecord | None:
        """Compare-and-set ownership on ``version``; the full record, or ``None`` if it lost."""
        args = [
            execution_id,
            owner,
            repr(float(lease_expires_at)),
            str(int(expected_version)),
            repr(float(self._clock())),
        ]
        found = await self._script("claim", lua.CLAIM, args)
        if not found:
            return None
        fields, variables, state = found
        return _record(execution_id, dict(_pairs(fields)), _pairs(variables), _pairs(state))

    async def renew(self, execution_id: str, *, owner: str, lease_expires_at: float) -> bool:
        """Extend the lease if ``owner`` still runs the execution (version unchanged)."""
        args = [execution_id, owner, repr(float(lease_expires_at))]
        return bool(await self._script("renew", lua.RENEW, args))

    async def set_status(
        self,
        execution_id: str,
        *,
        expected_version: int,
        status: Status,
        error: dict[str, Any] | None = None,
        entry: AuditEntry | None = None,
    ) -> bool:
        """Compare-and-set the status on ``version``, release the execution, write ``error``."""
        args = [
            execution_id,
            str(int(expected_version)),
            Status(status).value,
            encode_nullable(error, "the error", "error") or "",
            "" if entry is None else _encode_entry(entry),
            repr(float(self._clock())),
        ]
        return bool(await self._script("set_status", lua.SET_STATUS, args))

    async def request_cancel(self, execution_id: str) -> bool:
        """Flag the execution for cancellation (version unchanged); False if it is unknown."""
        return bool(await self._script("request_cancel", lua.REQUEST_CANCEL, [execution_id]))

    async def entries(self, execution_id: str) -> list[AuditEntry]:
        """The execution's audit entries in ``seq`` order."""
        client = await self._connection()
        try:
            texts = await client.lrange(self._key("entries", execution_id), 0, -1)
        except RedisError as exc:
            raise self._error(exc) from exc
        out = []
        for seq, text in enumerate(texts, start=1):
            step_path, step_id, step_type, action, attempt, started, finished, output, error = (
                json.loads(text)
            )
            out.append(
                AuditEntry(
                    execution_id=execution_id,
                    step_path=step_path,
                    step_id=step_id,
                    step_type=step_type,
                    action=action,
                    started_at=started,
                    finished_at=finished,
                    attempt=attempt,
                    output=output,
                    error=error,
                    seq=seq,
                )
            )
        return out

    async def find(
        self,
        *,
        workflow_id: str | None = None,
        status: Status | None = None,
        parent_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[ExecutionSummary]:
        """Executions matching every given filter, newest first, paged."""
        status_text = None if status is None else Status(status).value
        args = [
            "" if value is None else f"={value}" for value in (workflow_id, status_text, parent_id)
        ]
        args += [str(max(limit, 0)), str(max(offset, 0))]
        rows = await self._script("find", lua.FIND, args)
        return [_summary(row) for row in rows]

    async def find_due(self, *, now: float, limit: int = 100) -> list[ExecutionSummary]:
        """Executions whose lease expired or whose wake-up time or deadline passed, oldest first."""
        rows = await self._script("find_due", lua.FIND_DUE, [repr(float(now)), str(max(limit, 0))])
        return [_summary(row) for row in rows]

    async def delete(self, execution_id: str) -> bool:
        """Delete the execution, its variables, state and entries. True if it existed."""
        return bool(await self._script("delete", lua.DELETE, [execution_id]))

    async def close(self) -> None:
        """Close the connections; later calls raise StoreError."""
        self._closed = True
        closer, self._closer, self._client = self._closer, None, None
        if closer is not None and self._client_loop is asyncio.get_running_loop():
            await closer.aclose()

    # -- connections -------------------------------------------------------------------------

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}:{kind}:{name}"

    async def _script(self, name: str, source: str, args: list[Any]) -> Any:
        client = await self._connection()
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = client.register_script(source)
        try:
            return await script(keys=[], args=[*self._head, *args], client=client)
        except RedisError as exc:
            raise self._error(exc) from exc

    async def _connection(self) -> aioredis.Redis:
        if self._closed:
            raise StoreError(f"the Redis store {self.url} is closed", url=self.url)
        loop = asyncio.get_running_loop()
        if self._client is not None and self._client_loop is loop:
            return self._client
        if self._opening is None or self._client_loop is not loop:
            # Connections belong to one event loop: asyncio.run() per call (the *_sync
            # wrappers) gets fresh ones; the old ones were closed as that loop shut down.
            self._client, self._closer = None, None
            self._client_loop, self._opening = loop, asyncio.Lock()
        async with self._opening:
            if self._client is None:
                client = await self._connect()
                self._closer = _close_with_the_loop(client)
                await anext(self._closer)
                self._client = client
            return self._client

    async def _connect(self) -> aioredis.Redis:
        """Connect, and check (or record) the version of the key layout."""
        try:
            client = aioredis.Redis.from_url(
                self._redis_url, decode_responses=True, retry=Retry(NoBackoff(), 0)
            )
        except ValueError as exc:
            raise ConfigurationError(
                f"bad Redis store URL {self.url!r}: {exc}", url=self.url
            ) from None
        meta = f"{self.prefix}:meta"
        try:
            await client.hsetnx(meta, "schema_version", str(SCHEMA_VERSION))
            found = int(await client.hget(meta, "schema_version") or 0)
        except RedisError as exc:
            await client.aclose()
            raise self._error(exc, connecting=True) from exc
        if found > SCHEMA_VERSION:
            await client.aclose()
            raise StoreError(
                f"the Redis store at {self.where} (prefix {self.prefix!r}) was written by a newer "
                f"dwf (schema version {found}; this dwf knows up to {SCHEMA_VERSION}). Upgrade "
                "dwf (pip install -U dwf) to use it.",
                schema_version=found,
            )
        return client

    def _error(self, exc: RedisError, *, connecting: bool = False) -> StoreError:
        """A StoreError that names the server (never the password) and says what to do."""
        text = str(exc).strip()
        facts = {"where": self.where, "redis_error": text}
        if isinstance(exc, RedisConnectionError | RedisTimeoutError):
            if connecting:
                return StoreError(
                    f"cannot connect to the Redis store at {self.where}: {text}. Check that the "
                    "server runs and the host, port, password and database in the store URL "
                    "are right.",
                    **facts,
                )
            return StoreError(
                f"lost the connection to the Redis store at {self.where}: {text}. A write "
                "either ran whole or not at all; reload the execution and retry.",
                **facts,
            )
        return StoreError(f"the Redis store at {self.where} failed: {text}", **facts)


async def _close_with_the_loop(client: aioredis.Redis) -> AsyncGenerator[None, None]:
    """Waits until :meth:`RedisStore.close`, or until the event loop shuts down its async
    generators (``asyncio.run`` does, before it closes the loop), then closes the client while
    its loop still runs."""
    try:
        yield
    finally:
        await client.aclose()


def _parse_url(url: str, shown: str) -> tuple[str, dict[str, str]]:
    """The URL for redis-py, and dwf's own options."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = {name: value for name, value in query if name in _OPTIONS}
    rest = [(name, value) for name, value in query if name not in _OPTIONS]
    for name, _ in rest:
        if name not in URL_QUERY_ARGUMENT_PARSERS and not name.startswith("ssl_"):
            raise ConfigurationError(
                f"unknown Redis store option {name!r} in {shown!r}; dwf's options are "
                f"{', '.join(_OPTIONS)}, redis-py's are {', '.join(URL_QUERY_ARGUMENT_PARSERS)} "
                "and ssl_*",
                url=shown,
            )
    if not any(name == "socket_connect_timeout" for name, _ in rest):
        rest.append(("socket_connect_timeout", _DEFAULT_CONNECT_TIMEOUT))
    return urlunsplit(parts._replace(query=urlencode(rest, quote_via=quote))), options


def _ttl(raw: str, shown: str) -> float:
    found = _TTL.fullmatch(raw.strip().lower())
    seconds = float(found.group(1)) * _UNITS[found.group(2)] if found else 0.0
    if seconds < 0.001:
        raise ConfigurationError(
            f"ttl in {shown!r} must be a time > 0 in seconds (or with a unit: 500ms, 15m, 12h, "
            f"30d), got {raw!r}",
            url=shown,
        )
    return seconds


def _float(value: float | None) -> str | None:
    return None if value is None else repr(float(value))


def _counted(items: Iterable[tuple[Any, ...]]) -> list[Any]:
    """The flattened items, preceded by how many arguments they are."""
    flat = [part for item in items for part in item]
    return [len(flat), *flat]


def _pairs(flat: list[Any]) -> list[tuple[str, str]]:
    """``[k1, v1, k2, v2]`` (HGETALL inside a script) as pairs."""
    return list(zip(flat[::2], flat[1::2], strict=True))


def _encode_map(values: Mapping[Any, Any], kind: str) -> list[tuple[str, str]]:
    out = []
    for name, value in values.items():
        name = require_name(name, kind)
        out.append((name, encode(value, f"{kind} '{name}'", name)))
    return out


def _encode_entry(e: AuditEntry) -> str:
    """One entry as a JSON array; output and error are spliced in as their own JSON text."""
    where = f"the entry of step {e.step_path!r}"
    output = encode_nullable(e.output, f"the output of {where}", "output")
    error = encode_nullable(e.error, f"the error of {where}", "error")
    head = [
        e.step_path,
        e.step_id,
        e.step_type,
        e.action,
        int(e.attempt),
        float(e.started_at),
        float(e.finished_at),
    ]
    text = json.dumps(head, separators=(",", ":"))  # ASCII, so any string survives
    return f"{text[:-1]},{output or 'null'},{error or 'null'}]"


def _record(
    execution_id: str,
    fields: Mapping[str, str],
    variables: Iterable[tuple[str, str]],
    state: Iterable[tuple[str, str]],
) -> ExecutionRecord:
    def number(name: str) -> float | None:
        raw = fields.get(name)
        return None if raw is None else float(raw)

    return ExecutionRecord(
        id=execution_id,
        workflow_id=fields["workflow_id"],
        definition_hash=fields["definition_hash"],
        status=Status(fields["status"]),
        input=decode(fields["input"]),
        variables={name: decode(text) for name, text in variables},
        state={key: decode(text) for key, text in state},
        position=decode(fields["position"]),
        output=decode(fields.get("output")),
        halt=decode(fields.get("halt")),
        error=decode(fields.get("error")),
        parent_id=fields.get("parent_id"),
        parent_step=fields.get("parent_step"),
        owner=fields.get("owner"),
        lease_expires_at=number("lease_expires_at"),
        deadline=number("deadline"),
        wake_at=number("wake_at"),
        cancel_requested=fields.get("cancel_requested") == "1",
        version=int(fields["version"]),
        created_at=float(fields["created_at"]),
        updated_at=float(fields["updated_at"]),
    )


def _summary(row: list[Any]) -> ExecutionSummary:
    eid, workflow_id, status, parent_id, owner, lease, deadline, wake_at, cancel, *rest = row
    version, created_at, updated_at = rest
    return ExecutionSummary(
        id=eid,
        workflow_id=workflow_id,
        status=Status(status),
        parent_id=parent_id,
        owner=owner,
        lease_expires_at=None if lease is None else float(lease),
        deadline=None if deadline is None else float(deadline),
        wake_at=None if wake_at is None else float(wake_at),
        cancel_requested=cancel == "1",
        version=int(version),
        created_at=float(created_at),
        updated_at=float(updated_at),
    )


def _lease_lost(execution_id: str, owner: str, exists: bool, holder: str, status: str) -> LeaseLost:
    if not exists:
        return LeaseLost(
            f"execution '{execution_id}' no longer exists; stop running it",
            execution_id=execution_id,
            owner=owner,
        )
    held = f"owned by '{holder}'" if holder else f"{status} and unowned"
    return LeaseLost(
        f"execution '{execution_id}' is {held}, not owned by '{owner}'; "
        "another worker took it over or released it, so this one must stop running it",
        execution_id=execution_id,
        owner=owner,
    )
