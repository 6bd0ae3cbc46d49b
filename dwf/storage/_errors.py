"""The errors every backend raises for the same reasons, worded once so that they read alike."""

from __future__ import annotations

from typing import Any

from dwf.errors import InvalidTransition, LeaseLost, StoreError

__all__ = ["already_exists", "lease_lost", "newer_schema"]


def already_exists(execution_id: str) -> InvalidTransition:
    """For :meth:`~dwf.storage.base.Store.create` with an id that is taken."""
    return InvalidTransition(
        f"execution '{execution_id}' already exists; choose another id",
        execution_id=execution_id,
    )


def lease_lost(execution_id: str, owner: str, found: tuple[str | None, str] | None) -> LeaseLost:
    """For a checkpoint by ``owner`` that does not own the execution.

    Args:
        execution_id: The execution the checkpoint is for.
        owner: The checkpoint's owner.
        found: The stored owner (``None`` or ``""`` when unowned) and status, or ``None`` when
            the execution does not exist.
    """
    if found is None:
        return LeaseLost(
            f"execution '{execution_id}' no longer exists; stop running it",
            execution_id=execution_id,
            owner=owner,
        )
    holder, status = found
    held = f"owned by '{holder}'" if holder else f"{status} and unowned"
    return LeaseLost(
        f"execution '{execution_id}' is {held}, not owned by '{owner}'; "
        "another worker took it over or released it, so this one must stop running it",
        execution_id=execution_id,
        owner=owner,
    )


def newer_schema(store: str, found: int, known: int, **facts: Any) -> StoreError:
    """For a store whose schema version ``found`` is above the ``known`` one.

    Args:
        store: How the message names the store, e.g. ``"the SQLite store '/x/dwf.db'"``.
        found: The schema version in the store.
        known: The newest schema version this dwf knows.
        facts: More attributes for the error (``schema_version`` is always set).
    """
    return StoreError(
        f"{store} was written by a newer dwf (schema version {found}; this dwf knows up to "
        f"{known}). Upgrade dwf (pip install -U dwf) to use it.",
        **facts,
        schema_version=found,
    )
