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

import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dwf.errors import ConfigurationError, StoreError
from dwf.storage import _redis_lua as lua
from dwf.storage import _rows as rows
from dwf.storage._errors import already_exists, lease_lost, newer_schema
from dwf.storage._loops import ConnectionPerLoop
from dwf.storage._options import bad_option, join_query, redact, set_default, split_query
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
        self.url = redact(url)
        self._clock = clock
        self._redis_url, options = _parse_url(url, self.url)
        parts = urlsplit(self._redis_url)
        self.where = f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or '/0'}"
        self.prefix = options.get("prefix", "dwf")
        if not self.prefix:
            raise ConfigurationError(f"the prefix in {self.url!r} must not be empty", url=self.url)
        self.ttl: float | None = _ttl(options["ttl"], self.url) if "ttl" in options else None
        self._head = [f"{self.prefix}:", str(round((self.ttl or 0) * 1000))]
        self._clients = ConnectionPerLoop(aioredis.Redis.aclose)
        self._scripts: dict[str, AsyncScript] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r})"

    # -- the protocol ------------------------------------------------------------------------

    async def create(self, record: ExecutionRecord, definition: str) -> ExecutionRecord:
        """See :meth:`dwf.storage.base.Store.create`."""
        new = rows.new_execution(record, self._clock)
        fields = _hash_fields(new.row)
        args = [record.id, record.definition_hash, definition]
        for pairs in (fields.items(), new.variables, new.state):
            args.extend(_counted(pairs))
        if not await self._script("create", lua.CREATE, args):
            raise already_exists(record.id)
        return _record(record.id, fields, new.variables, new.state)

    async def load(self, execution_id: str) -> ExecutionRecord | None:
        """See :meth:`dwf.storage.base.Store.load`."""
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
        """See :meth:`dwf.storage.base.Store.load_definition`."""
        client = await self._connection()
        try:
            text = await client.get(self._key("def", definition_hash))
        except RedisError as exc:
            raise self._error(exc) from exc
        return None if text is None else str(text)

    async def checkpoint(self, checkpoint: Checkpoint) -> int:
        """See :meth:`dwf.storage.base.Store.checkpoint`; values are encoded before the script
        runs."""
        cp = rows.checkpoint_row(checkpoint, self._clock)
        lists: list[Iterable[Any]] = [
            _hash_updates(cp.fields),
            cp.set_variables,
            [(name,) for name in cp.delete_variables],
            cp.set_state,
            [(name,) for name in cp.delete_state],
            [(_entry_json(e),) for e in cp.entries],
        ]
        args = [
            cp.execution_id,
            cp.owner,
            cp.status,
            cp.position,
            _float(cp.lease_expires_at) or "",
            repr(float(cp.now)),
        ]
        for items in lists:
            args.extend(_counted(items))
        result = await self._script("checkpoint", lua.CHECKPOINT, args)
        if isinstance(result, list):
            _, exists, owner, status = result
            raise lease_lost(cp.execution_id, cp.owner, (owner, status) if exists else None)
        return int(result)

    async def claim(
        self,
        execution_id: str,
        *,
        owner: str,
        lease_expires_at: float,
        expected_version: int,
    ) -> ExecutionRecord | None:
        """See :meth:`dwf.storage.base.Store.claim`."""
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
        """See :meth:`dwf.storage.base.Store.renew`."""
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
        """See :meth:`dwf.storage.base.Store.set_status`."""
        change = rows.status_row(execution_id, expected_version, status, error, entry, self._clock)
        args = [
            change.execution_id,
            str(int(change.expected_version)),
            change.status,
            change.error or "",
            "" if change.entry is None else _entry_json(change.entry),
            repr(float(change.now)),
        ]
        return bool(await self._script("set_status", lua.SET_STATUS, args))

    async def request_cancel(self, execution_id: str) -> bool:
        """See :meth:`dwf.storage.base.Store.request_cancel`."""
        return bool(await self._script("request_cancel", lua.REQUEST_CANCEL, [execution_id]))

    async def entries(self, execution_id: str) -> list[AuditEntry]:
        """See :meth:`dwf.storage.base.Store.entries`."""
        client = await self._connection()
        try:
            texts = await client.lrange(self._key("entries", execution_id), 0, -1)
        except RedisError as exc:
            raise self._error(exc) from exc
        return [
            rows.entry_from_row(execution_id, seq, json.loads(text), decoded=True)
            for seq, text in enumerate(texts, start=1)
        ]

    async def find(
        self,
        *,
        workflow_id: str | None = None,
        status: Status | None = None,
        parent_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[ExecutionSummary]:
        """See :meth:`dwf.storage.base.Store.find`."""
        query = rows.find_row(workflow_id, status, parent_id, limit, offset)
        filters = (query.workflow_id, query.status, query.parent_id)
        args = ["" if value is None else f"={value}" for value in filters]
        args += [str(query.limit), str(query.offset)]
        found = await self._script("find", lua.FIND, args)
        return [rows.summary_from_row(row) for row in found]

    async def find_due(self, *, now: float, limit: int = 100) -> list[ExecutionSummary]:
        """See :meth:`dwf.storage.base.Store.find_due`."""
        args = [repr(float(now)), str(max(limit, 0))]
        return [
            rows.summary_from_row(row) for row in await self._script("find_due", lua.FIND_DUE, args)
        ]

    async def delete(self, execution_id: str) -> bool:
        """See :meth:`dwf.storage.base.Store.delete`."""
        return bool(await self._script("delete", lua.DELETE, [execution_id]))

    async def close(self) -> None:
        """See :meth:`dwf.storage.base.Store.close`."""
        self._closed = True
        await self._clients.close()

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
        return await self._clients.get(self._connect)

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
            store = f"the Redis store at {self.where} (prefix {self.prefix!r})"
            raise newer_schema(store, found, SCHEMA_VERSION)
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


def _parse_url(url: str, shown: str) -> tuple[str, dict[str, str]]:
    """The URL for redis-py, and dwf's own options."""
    parts, options, rest = split_query(url, _OPTIONS)
    for name, _ in rest:
        if name not in URL_QUERY_ARGUMENT_PARSERS and not name.startswith("ssl_"):
            raise ConfigurationError(
                f"unknown Redis store option {name!r} in {shown!r}; dwf's options are "
                f"{', '.join(_OPTIONS)}, redis-py's are {', '.join(URL_QUERY_ARGUMENT_PARSERS)} "
                "and ssl_*",
                url=shown,
            )
    set_default(rest, "socket_connect_timeout", _DEFAULT_CONNECT_TIMEOUT)
    return join_query(parts, rest), options


def _ttl(raw: str, shown: str) -> float:
    found = _TTL.fullmatch(raw.strip().lower())
    seconds = float(found.group(1)) * _UNITS[found.group(2)] if found else 0.0
    if seconds < 0.001:
        rule = "a time > 0 in seconds (or with a unit: 500ms, 15m, 12h, 30d)"
        raise bad_option("ttl", raw, shown, rule)
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


def _hash_fields(row: rows.ExecutionRow) -> dict[str, str]:
    """An execution's hash fields: numbers as ``repr(float)``, the flag as ``0``/``1``, no id and
    no NULLs."""
    values = {name: getattr(row, name) for name in rows.EXECUTION_COLUMNS[1:]}
    for name in ("lease_expires_at", "deadline", "wake_at", "created_at", "updated_at"):
        values[name] = _float(values[name])
    values["cancel_requested"] = "1" if row.cancel_requested else "0"
    values["version"] = str(row.version)
    return {name: value for name, value in values.items() if value is not None}


def _hash_updates(fields: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A checkpoint's optional fields as script arguments; ``""`` deletes the field."""
    return [
        (name, (_float(value) if name == "wake_at" else value) or "")
        for name, value in fields.items()
    ]


def _entry_json(row: rows.EntryRow) -> str:
    """One entry as a JSON array; output and error are spliced in as their own JSON text."""
    head = [
        row.step_path,
        row.step_id,
        row.step_type,
        row.action,
        int(row.attempt),
        float(row.started_at),
        float(row.finished_at),
    ]
    text = json.dumps(head, separators=(",", ":"))  # ASCII, so any string survives
    return f"{text[:-1]},{row.output or 'null'},{row.error or 'null'}]"


def _record(
    execution_id: str,
    fields: Mapping[str, str],
    variables: Iterable[tuple[str, str]],
    state: Iterable[tuple[str, str]],
) -> ExecutionRecord:
    row = [execution_id, *(fields.get(name) for name in rows.EXECUTION_COLUMNS[1:])]
    return rows.record_from_row(row, variables, state)
