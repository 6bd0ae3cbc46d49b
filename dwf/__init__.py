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

from dwf.dsl import load_workflow, load_workflow_file, parse_workflow
from dwf.dsl.model import InputSpec, StepDef, WorkflowDefinition
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
from dwf.runtime import ResumeInput, StepContext
from dwf.services import Services
from dwf.storage.base import AuditEntry, ExecutionRecord, Status, Store

if TYPE_CHECKING:
    from dwf.engine import Engine, Event, RunResult
    from dwf.runners import StreamRunner, SyncRunner
    from dwf.storage import open_store

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
    "load_workflow",
    "load_workflow_file",
    "open_store",
    "parse_workflow",
]

_LAZY = {
    "Engine": "dwf.engine",
    "Event": "dwf.engine",
    "RunResult": "dwf.engine",
    "SyncRunner": "dwf.runners",
    "StreamRunner": "dwf.runners",
    "open_store": "dwf.storage",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dwf' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
