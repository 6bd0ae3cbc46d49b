"""mcp_server's public API, and its one-way dependency on dwf's public API."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import mcp_server

PACKAGE = Path(mcp_server.__file__).parent


def test_dunder_all_is_pinned() -> None:
    assert set(mcp_server.__all__) == {
        "LoadedWorkflows",
        "WorkflowServer",
        "create_app",
        "load_services",
        "load_workflows",
        "serve_stdio",
    }
    for name in mcp_server.__all__:
        assert getattr(mcp_server, name) is not None


def test_mcp_server_uses_only_the_public_api_of_dwf() -> None:
    offending = []
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dwf"):
                if node.module != "dwf":
                    offending.append(f"{path.name}: from {node.module} import ...")
            elif isinstance(node, ast.Import):
                offending.extend(
                    f"{path.name}: import {a.name}" for a in node.names if a.name.startswith("dwf.")
                )
    assert offending == []


def test_importing_mcp_server_does_not_import_the_sdk() -> None:
    code = "import sys, mcp_server; print(any(m.split('.')[0] == 'mcp' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
