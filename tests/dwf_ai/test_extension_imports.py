"""dwf_ai is part of every install: it must load without its optional SDKs."""

from __future__ import annotations

import subprocess
import sys

BLOCKED = ("openai", "anthropic", "mcp", "anyio", "httpx2", "starlette", "uvicorn")


def test_the_ai_extension_registers_without_any_optional_sdk() -> None:
    script = (
        "import sys\n"
        f"for name in {BLOCKED!r}:\n"
        "    sys.modules[name] = None  # makes `import name` fail\n"
        "import dwf\n"
        "registry = dwf.Registry.with_installed_extensions()\n"
        "print(sorted(registry.step_types))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for step in ("agent", "guardrail", "handoff", "file_search", "mcp"):
        assert f"'{step}'" in out.stdout
