"""What the engine hands back: run results and lifecycle events."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dwf.storage.base import ExecutionRecord

__all__ = ["Event", "EventHandler", "RunResult"]


@dataclass
class RunResult:
    """The outcome of run/resume: ``status`` is completed, halted, failed, cancelled or running
    (when another process took the execution over)."""

    execution_id: str
    status: str
    output: Any = None
    halt: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    workflow_id: str | None = None

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def halted(self) -> bool:
        return self.status == "halted"

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "status": self.status,
            "output": self.output,
            "halt": self.halt,
            "error": self.error,
        }

    @classmethod
    def from_record(cls, record: ExecutionRecord) -> RunResult:
        return cls(
            execution_id=record.id,
            status=str(record.status),
            output=record.output,
            halt=record.halt,
            error=record.error,
            workflow_id=record.workflow_id,
        )


@dataclass
class Event:
    """A lifecycle event: ``workflow.*``, ``step.*`` (and ``agent.*`` from dwf_ai)."""

    type: str
    execution_id: str
    workflow_id: str
    timestamp: float
    step_path: str | None = None
    step_id: str | None = None
    step_type: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "execution_id": self.execution_id,
            "workflow_id": self.workflow_id,
            "timestamp": self.timestamp,
        }
        if self.step_path is not None:
            out.update(step_path=self.step_path, step_id=self.step_id, step_type=self.step_type)
        out["data"] = self.data
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, default=str)

    def to_sse(self) -> str:
        """The event as one Server-Sent Events message."""
        return f"event: {self.type}\ndata: {self.to_json()}\n\n"


EventHandler = Callable[[Event], Any]
