"""dwf: a durable workflow engine for AI agent orchestration.

Load a workflow, run it, resume it::

    import dwf

    workflow = dwf.load_workflow(Path("order.yml"))
    engine = dwf.Engine("sqlite:///orders.db", services={"PaymentService": PaymentService})
    result = engine.run_sync(workflow, {"order_id": "A-1"})
    if result.halted:
        result = engine.resume_sync(result.execution_id, approved=True)

Importing ``dwf`` is light: storage backends, the CLI and extensions load when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dwf.errors import (
    ConfigurationError,
    DefinitionError,
    Diagnostic,
    DwfError,
    ExecutionError,
    ExecutionNotFound,
    ExpressionError,
    InputValidationError,
    InvalidTransition,
    LeaseLost,
    NonRetryableError,
    RegistryError,
    StateError,
    StepFailed,
    StepTimeout,
    StoreError,
    WorkflowLoadError,
    WorkflowTimeout,
    WorkflowValidationError,
)

if TYPE_CHECKING:
    from dwf.dsl import load_workflow, load_workflow_file, parse_workflow
    from dwf.dsl.catalog import load_catalog, workflow_files
    from dwf.dsl.model import InputSpec, StepDef, WorkflowDefinition
    from dwf.engine import Engine
    from dwf.extensions import (
        BodySpec,
        Continue,
        Extension,
        Halt,
        Registry,
        StepConfig,
        StepType,
        TopLevelKey,
        default_registry,
    )
    from dwf.results import Event, RunResult
    from dwf.runners import HaltAnswer, StreamRunner, SyncRunner
    from dwf.runtime import ResumeInput, StepContext
    from dwf.services import Services
    from dwf.storage import open_store
    from dwf.storage.base import AuditEntry, ExecutionRecord, Status, Store

__version__ = "0.1.0"

__all__ = [
    "AuditEntry",
    "BodySpec",
    "ConfigurationError",
    "Continue",
    "DefinitionError",
    "Diagnostic",
    "DwfError",
    "Engine",
    "Event",
    "ExecutionError",
    "ExecutionNotFound",
    "ExecutionRecord",
    "ExpressionError",
    "Extension",
    "Halt",
    "HaltAnswer",
    "InputSpec",
    "InputValidationError",
    "InvalidTransition",
    "LeaseLost",
    "NonRetryableError",
    "Registry",
    "RegistryError",
    "ResumeInput",
    "RunResult",
    "Services",
    "StateError",
    "Status",
    "StepConfig",
    "StepContext",
    "StepDef",
    "StepFailed",
    "StepTimeout",
    "StepType",
    "Store",
    "StoreError",
    "StreamRunner",
    "SyncRunner",
    "TopLevelKey",
    "WorkflowDefinition",
    "WorkflowLoadError",
    "WorkflowTimeout",
    "WorkflowValidationError",
    "__version__",
    "default_registry",
    "load_catalog",
    "load_workflow",
    "load_workflow_file",
    "open_store",
    "parse_workflow",
    "workflow_files",
]

# Everything but the errors loads on first use, so `import dwf` (and `dwf --help`) stay fast.
_LAZY = {
    "load_catalog": "dwf.dsl.catalog",
    "workflow_files": "dwf.dsl.catalog",
    "load_workflow": "dwf.dsl",
    "load_workflow_file": "dwf.dsl",
    "parse_workflow": "dwf.dsl",
    "InputSpec": "dwf.dsl.model",
    "StepDef": "dwf.dsl.model",
    "WorkflowDefinition": "dwf.dsl.model",
    "Engine": "dwf.engine",
    "Event": "dwf.results",
    "RunResult": "dwf.results",
    "BodySpec": "dwf.extensions",
    "Continue": "dwf.extensions",
    "Extension": "dwf.extensions",
    "Halt": "dwf.extensions",
    "Registry": "dwf.extensions",
    "StepConfig": "dwf.extensions",
    "StepType": "dwf.extensions",
    "TopLevelKey": "dwf.extensions",
    "default_registry": "dwf.extensions",
    "HaltAnswer": "dwf.runners",
    "StreamRunner": "dwf.runners",
    "SyncRunner": "dwf.runners",
    "ResumeInput": "dwf.runtime",
    "StepContext": "dwf.runtime",
    "Services": "dwf.services",
    "open_store": "dwf.storage",
    "AuditEntry": "dwf.storage.base",
    "ExecutionRecord": "dwf.storage.base",
    "Status": "dwf.storage.base",
    "Store": "dwf.storage.base",
}


def __dir__() -> list[str]:
    return sorted(__all__)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dwf' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
