"""The eleven core step types, one per file, registered through the public extension API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dwf.steps.approval import ApprovalStep
from dwf.steps.assign import AssignStep
from dwf.steps.call import CallStep
from dwf.steps.end import EndStep
from dwf.steps.halt import HaltStep
from dwf.steps.loop import LoopStep
from dwf.steps.parallel import ParallelStep
from dwf.steps.router import RouterStep
from dwf.steps.start import StartStep
from dwf.steps.transform import TransformStep
from dwf.steps.workflow import WorkflowStep

if TYPE_CHECKING:
    from dwf.extensions import Registry

__all__ = [
    "CORE_STEP_TYPES",
    "ApprovalStep",
    "AssignStep",
    "CallStep",
    "CoreSteps",
    "EndStep",
    "HaltStep",
    "LoopStep",
    "ParallelStep",
    "RouterStep",
    "StartStep",
    "TransformStep",
    "WorkflowStep",
]

CORE_STEP_TYPES = (
    StartStep,
    EndStep,
    CallStep,
    AssignStep,
    RouterStep,
    LoopStep,
    HaltStep,
    ApprovalStep,
    TransformStep,
    ParallelStep,
    WorkflowStep,
)


class CoreSteps:
    """The core step types as an extension, installed in every default registry."""

    name = "core"

    def setup(self, registry: Registry) -> None:
        for step_type in CORE_STEP_TYPES:
            registry.register_step(step_type)
