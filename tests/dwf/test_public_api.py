"""The public API is what `dwf.__all__` exports; this pins it, so changes are deliberate."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dwf

EXPECTED = {
    "AuditEntry", "BodySpec", "ConfigurationError", "Continue", "DefinitionError", "Diagnostic",
    "DwfError", "Engine", "Event", "ExecutionError", "ExecutionNotFound", "ExecutionRecord",
    "ExpressionError", "Extension", "Halt", "HaltAnswer", "InputSpec", "InputValidationError",
    "InvalidTransition", "LeaseLost", "NonRetryableError", "Registry", "RegistryError",
    "ResumeInput", "RunResult", "Services", "StateError", "Status", "StepConfig", "StepContext",
    "StepDef", "StepFailed", "StepTimeout", "StepType", "Store", "StoreError", "StreamRunner",
    "SyncRunner", "TopLevelKey", "WorkflowDefinition", "WorkflowLoadError", "WorkflowTimeout",
    "WorkflowValidationError", "__version__", "default_registry", "load_catalog", "load_workflow",
    "load_workflow_file", "open_store", "parse_workflow", "workflow_files",
}  # fmt: skip


def test_dunder_all_is_pinned() -> None:
    assert set(dwf.__all__) == EXPECTED


def test_every_exported_name_resolves() -> None:
    for name in dwf.__all__:
        assert getattr(dwf, name) is not None, name


def test_an_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        dwf.no_such_thing  # type: ignore[attr-defined]  # noqa: B018


def _modules_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    return set(out.stdout.split())


def test_importing_dwf_imports_neither_dwf_ai_nor_mcp() -> None:
    modules = _modules_after("import dwf")
    assert not {m for m in modules if m == "dwf_ai" or m.startswith(("dwf_ai.", "mcp"))}


def test_using_the_engine_imports_neither_dwf_ai_nor_mcp() -> None:
    code = (
        "import dwf\n"
        "wf = dwf.load_workflow('id: a\\nname: A\\nsteps:\\n  - {id: e, type: end}\\n')\n"
        "print(dwf.Engine('memory://').run_sync(wf).status)"
    )
    modules = _modules_after(code)
    assert "dwf.engine" in modules
    assert not {m for m in modules if m == "dwf_ai" or m.startswith(("dwf_ai.", "mcp"))}


def test_the_cli_module_loads_without_heavy_dependencies() -> None:
    modules = _modules_after("import dwf.cli")
    assert not modules & {"pydantic", "yaml", "sqlite3", "regex", "jsonschema"}
