"""Fixtures for the MCP server tests; puts this folder on ``sys.path`` for ``mcp_support``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from mcp_support import MODES, SERVICES, WORKFLOWS  # noqa: E402

from mcp_server import WorkflowServer, load_services, load_workflows  # noqa: E402

MakeServer = Callable[..., WorkflowServer]


@pytest.fixture
def make_server() -> MakeServer:
    """Build a server over the fixture workflows (memory store unless told otherwise)."""

    def make(paths: list[Path] | None = None, **options: Any) -> WorkflowServer:
        options.setdefault("store", "memory://")
        options.setdefault("services", load_services([SERVICES], env=False))
        options.setdefault("wait", 10.0)
        return WorkflowServer(load_workflows(paths or [WORKFLOWS]), **options)

    return make


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Each test that takes ``mode`` runs in both protocol eras."""
    value: str = request.param
    return value
