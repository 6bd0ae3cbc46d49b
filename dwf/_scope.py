"""Variable scopes of a running execution and the per-step write buffer.

The root scope is the execution's variables. A parallel branch gets an overlay scope: its writes
stay private to the branch (and are persisted under the branch's state keys) until the parallel
step merges them. Every write marks the entry dirty on the run, so the next checkpoint carries
exactly what changed.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["DELETED", "Dirty", "OverlayScope", "RootScope", "Scope", "StepBuffer"]


class _Deleted:
    def __repr__(self) -> str:
        return "DELETED"


DELETED: Any = _Deleted()


class Dirty:
    """What changed since the last checkpoint: variables and engine state (``DELETED`` marks a
    deletion)."""

    __slots__ = ("state", "variables")

    def __init__(self) -> None:
        self.variables: dict[str, Any] = {}
        self.state: dict[str, Any] = {}

    def take(self) -> tuple[dict[str, Any], list[str], dict[str, Any], list[str]]:
        variables, state = self.variables, self.state
        self.variables, self.state = {}, {}
        set_v = {k: v for k, v in variables.items() if v is not DELETED}
        del_v = [k for k, v in variables.items() if v is DELETED]
        set_s = {k: v for k, v in state.items() if v is not DELETED}
        del_s = [k for k, v in state.items() if v is DELETED]
        return set_v, del_v, set_s, del_s


class Scope:
    """Read and write variables."""

    def get(self, name: str, default: Any = None) -> Any:
        raise NotImplementedError  # abstract

    def has(self, name: str) -> bool:
        raise NotImplementedError  # abstract

    def set(self, name: str, value: Any) -> None:
        raise NotImplementedError  # abstract

    def delete(self, name: str) -> None:
        raise NotImplementedError  # abstract

    def names(self) -> builtins.set[str]:
        raise NotImplementedError  # abstract


class RootScope(Scope):
    """The execution's own variables."""

    def __init__(self, values: dict[str, Any], dirty: Dirty) -> None:
        self.values = values
        self.dirty = dirty

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def has(self, name: str) -> bool:
        return name in self.values

    def set(self, name: str, value: Any) -> None:
        self.values[name] = value
        self.dirty.variables[name] = value

    def delete(self, name: str) -> None:
        if name in self.values:
            del self.values[name]
            self.dirty.variables[name] = DELETED

    def names(self) -> builtins.set[str]:
        return set(self.values)


class OverlayScope(Scope):
    """A branch's private view: reads fall through to the parent; writes stay here and are
    persisted as state entries ``<addr>|v:<name>``."""

    def __init__(self, parent: Scope, addr: str, state: dict[str, Any], dirty: Dirty) -> None:
        self.parent = parent
        self.addr = addr
        self.state = state
        self.dirty = dirty
        self.values: dict[str, Any] = {}
        self.deleted: builtins.set[str] = builtins.set()
        prefix = f"{addr}|v:"
        for key, entry in state.items():
            if key.startswith(prefix):
                name = key[len(prefix) :]
                if entry.get("deleted"):
                    self.deleted.add(name)
                else:
                    self.values[name] = entry.get("value")

    def _persist(self, name: str, entry: dict[str, Any]) -> None:
        key = f"{self.addr}|v:{name}"
        self.state[key] = entry
        self.dirty.state[key] = entry

    def get(self, name: str, default: Any = None) -> Any:
        if name in self.values:
            return self.values[name]
        if name in self.deleted:
            return default
        return self.parent.get(name, default)

    def has(self, name: str) -> bool:
        if name in self.values:
            return True
        return name not in self.deleted and self.parent.has(name)

    def set(self, name: str, value: Any) -> None:
        self.values[name] = value
        self.deleted.discard(name)
        self._persist(name, {"value": value})

    def delete(self, name: str) -> None:
        self.values.pop(name, None)
        self.deleted.add(name)
        self._persist(name, {"deleted": True})

    def names(self) -> builtins.set[str]:
        return (self.parent.names() - self.deleted) | builtins.set(self.values)

    def changes(self) -> tuple[dict[str, Any], builtins.set[str]]:
        return dict(self.values), builtins.set(self.deleted)


class StepBuffer(Mapping[str, Any]):
    """A step's uncommitted writes over its scope; also the read view the step resolves against."""

    __slots__ = ("scope", "writes")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.writes: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name in self.writes:
            value = self.writes[name]
            if value is DELETED:
                raise KeyError(name)
            return value
        if self.scope.has(name):
            return self.scope.get(name)
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        if name in self.writes:
            value = self.writes[name]
            return default if value is DELETED else value
        return self.scope.get(name, default)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if name in self.writes:
            return self.writes[name] is not DELETED
        return self.scope.has(name)

    def __iter__(self) -> Iterator[str]:
        names = self.scope.names()
        for name, value in self.writes.items():
            if value is DELETED:
                names.discard(name)
            else:
                names.add(name)
        return iter(sorted(names))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def set(self, name: str, value: Any) -> None:
        self.writes[name] = value

    def delete(self, name: str) -> None:
        self.writes[name] = DELETED

    def commit(self) -> None:
        for name, value in self.writes.items():
            if value is DELETED:
                self.scope.delete(name)
            else:
                self.scope.set(name, value)
        self.writes.clear()

    def discard(self) -> None:
        self.writes.clear()
