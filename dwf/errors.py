"""dwf's one error tree.

Every error dwf raises on purpose is a :class:`DwfError`. Errors carry their facts as attributes
(workflow, step, file, line, execution id) and survive a JSON round trip (:meth:`DwfError.to_dict`),
because failures cross the durable boundary and are read back by other processes.

::

    DwfError
    ├── DefinitionError                 the workflow, its configuration or the call is wrong
    │   ├── WorkflowLoadError           YAML that cannot become a workflow (syntax, keys, types)
    │   │   └── WorkflowValidationError a parsed workflow that fails the static checks
    │   ├── RegistryError               an unknown step type, service, method or extension
    │   └── ConfigurationError          a bad store URL, a missing optional dependency, bad options
    ├── ExecutionError                  something failed while an execution ran
    │   ├── StepFailed                  a step raised (its cause is kept as type and message)
    │   ├── StepTimeout                 a step ran past its timeout
    │   ├── WorkflowTimeout             the workflow ran past its deadline
    │   ├── InputValidationError        the run input does not match the declared inputs
    │   └── ExpressionError             a reference or condition cannot be evaluated
    ├── StateError                      the operation does not fit the execution's state
    │   ├── ExecutionNotFound           no execution with that id
    │   ├── InvalidTransition           e.g. resuming an execution that is not halted
    │   └── LeaseLost                   another process owns the execution now
    ├── StoreError                      the store cannot be read or written (corrupt, locked, down)
    └── NonRetryableError               raised by user code to stop step retries at once

Diagnostics (:class:`Diagnostic`) are located messages (file, line, column, step) that
``WorkflowLoadError`` and ``WorkflowValidationError`` collect, so that every problem in a file is
reported at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = [
    "ConfigurationError",
    "DefinitionError",
    "Diagnostic",
    "DwfError",
    "ExecutionError",
    "ExecutionNotFound",
    "ExpressionError",
    "InputValidationError",
    "InvalidTransition",
    "LeaseLost",
    "NonRetryableError",
    "RegistryError",
    "StateError",
    "StepFailed",
    "StepTimeout",
    "StoreError",
    "WorkflowLoadError",
    "WorkflowTimeout",
    "WorkflowValidationError",
]

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Diagnostic:
    """A located message about a workflow definition.

    ``str(diagnostic)`` reads ``order.yml:42:7: step 'charge': unknown key 'retries_delay' (did
    you mean 'retry_delay'?)``; parts that are unknown are left out.
    """

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    step_id: str | None = None
    severity: Severity = "error"

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
        elif self.line is not None:
            where = f"line {self.line}" + (f":{self.column}" if self.column is not None else "")
        prefix = f"{where}: " if where else ""
        if self.severity == "warning":
            prefix += "warning: "
        step = f"step '{self.step_id}': " if self.step_id else ""
        return f"{prefix}{step}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DwfError(Exception):
    """Base of every error dwf raises on purpose."""

    def __init__(self, message: str, **facts: Any) -> None:
        super().__init__(message)
        self.message = message
        self.facts: dict[str, Any] = {k: v for k, v in facts.items() if v is not None}
        for key, value in facts.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        return self.message

    @property
    def type_name(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe description: ``{"type", "message", **facts}``."""
        out: dict[str, Any] = {"type": self.type_name, "message": self.message}
        for key, value in self.facts.items():
            out[key] = value if isinstance(value, str | int | float | bool) else str(value)
        return out


class DefinitionError(DwfError):
    """The workflow definition, its configuration, or the way dwf was called is wrong."""


class _DiagnosticsError(DefinitionError):
    def __init__(self, diagnostics: list[Diagnostic], *, summary: str | None = None) -> None:
        errors = [d for d in diagnostics if d.severity == "error"]
        shown = errors or diagnostics
        text = "\n".join(str(d) for d in shown)
        if summary:
            text = f"{summary}\n{text}" if text else summary
        super().__init__(text)
        self.diagnostics = list(diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["diagnostics"] = [d.to_dict() for d in self.diagnostics]
        return out


class WorkflowLoadError(_DiagnosticsError):
    """The source cannot become a workflow: YAML syntax, document shape, keys or types."""


class WorkflowValidationError(WorkflowLoadError):
    """A loaded workflow fails the static checks (references, variables, reachability)."""


class RegistryError(DefinitionError):
    """A name that is not registered: a step type, a service, a method, an extension."""


class ConfigurationError(DefinitionError):
    """Bad configuration: an unknown store URL scheme, a missing optional extra, bad options."""


class ExecutionError(DwfError):
    """Something failed while an execution ran."""


class StepFailed(ExecutionError):
    """A step raised; ``error_type`` and ``message`` describe the original exception."""


class StepTimeout(ExecutionError):
    """A step ran past its timeout."""


class WorkflowTimeout(ExecutionError):
    """The execution ran past the workflow's deadline."""


class InputValidationError(ExecutionError):
    """The run input does not match the workflow's declared inputs."""


class ExpressionError(ExecutionError):
    """A ``$reference`` or a condition cannot be evaluated (bad regex, non-numeric comparison)."""


class StateError(DwfError):
    """The requested operation does not fit the execution's current state."""


class ExecutionNotFound(StateError):
    """No execution with that id exists in the store."""


class InvalidTransition(StateError):
    """The execution's status does not allow the operation (e.g. resuming a completed one)."""


class LeaseLost(StateError):
    """Another process took over the execution; this process must stop running it."""


class StoreError(DwfError):
    """The store cannot be read or written: corrupt or locked file, server down, bad schema."""


class NonRetryableError(DwfError):
    """Raise this (or a subclass) from a service to fail the step at once, without retries."""
