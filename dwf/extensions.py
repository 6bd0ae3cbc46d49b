"""The extension API: how step types, config models and top-level keys plug into dwf.

The eleven core step types register through exactly this API, as ``dwf_ai`` and third parties do.
A :class:`Registry` belongs to an instance (no process-global state): the loader, validator, engine
and CLI all take one. :func:`default_registry` builds one with the core step types, and
``Registry.with_installed_extensions()`` adds every extension installed under the
``dwf.extensions`` entry-point group (extensions are chosen by what the user installed, never by
a name in a YAML file).

An extension is an object with a ``name`` and a ``setup(registry)`` method::

    class MyExtension:
        name = "audit"

        def setup(self, registry: Registry) -> None:
            registry.register_step(NotifyStep)
            registry.register_top_level_key("audit", AuditSection)
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator

from dwf.errors import RegistryError

if TYPE_CHECKING:
    from dwf.dsl.model import StepDef, WorkflowDefinition
    from dwf.runtime import StepContext

__all__ = [
    "FINISHED",
    "BodySpec",
    "Continue",
    "Extension",
    "Halt",
    "Outcome",
    "Registry",
    "StepConfig",
    "StepType",
    "TopLevelKey",
    "default_registry",
    "did_you_mean",
]

#: The sentinel ``next`` target that ends the workflow (accepted for compatibility).
FINISHED = "__FINISHED__"


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a close match exists, else ``""``."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


class StepConfig(BaseModel):
    """Base class of every step's config model.

    Unknown keys are errors, and an explicit ``null`` means "absent", so defaults apply
    (``retry_delay: null`` is the default delay, not a type error).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    @model_validator(mode="before")
    @classmethod
    def _null_means_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


# --------------------------------------------------------------------------------------------
# What a step returns


class _DefaultNext:
    def __repr__(self) -> str:
        return "DEFAULT_NEXT"


DEFAULT_NEXT: Any = _DefaultNext()


@dataclass
class Continue:
    """Go on. ``next`` defaults to the step's own ``next`` key; ``None`` ends the current frame
    (the workflow, or a loop iteration, or a branch). ``output`` is recorded in the audit entry.
    """

    next: str | None = DEFAULT_NEXT
    output: Any = None


@dataclass
class Halt:
    """Stop the execution until someone resumes it.

    ``resume_at`` is the step to continue from (``None``: the frame ends on resume). When
    ``reenter`` is true, the halting step itself runs again on resume and receives the resume
    input as ``ctx.resume`` (approvals work this way); otherwise ``$response`` (and ``$approved``)
    are set and the frame continues at ``resume_at``. ``expires_at`` (epoch seconds) asks the
    engine to wake the execution then, with ``ctx.resume.timed_out`` set.
    """

    data: dict[str, Any]
    prompt: str | None = None
    resume_at: str | None = DEFAULT_NEXT
    reenter: bool = False
    expires_at: float | None = None


Outcome = Continue | Halt


# --------------------------------------------------------------------------------------------
# Step types


@dataclass(frozen=True)
class BodySpec:
    """A nested list of steps inside a step (a loop's ``do``, a parallel's branches).

    ``scope`` names the variables the body may read besides the outer ones (``item``, ``index``);
    ``sequential`` bodies run as a small graph from their first step; non-sequential ones (parallel
    branches) run each step on its own. ``exports`` says whether the ``scope`` names stay visible
    after the step (a body's own writes always do: possibly after a loop, merged after branches).
    """

    field: str
    steps: Sequence[StepDef]
    scope: tuple[str, ...] = ()
    sequential: bool = True
    exports: bool = True


C = TypeVar("C", bound=StepConfig)


class StepType(Generic[C]):
    """Base class of a step type: its name, its config model, how it runs, how it is analysed.

    Subclasses set ``name`` and ``config_model`` and implement :meth:`execute`. The static hooks
    (:meth:`targets`, :meth:`outputs`, :meth:`bodies`, ...) let the validator and ``dwf graph``
    understand a step without knowing its type.
    """

    name: ClassVar[str]
    config_model: ClassVar[type[StepConfig]]
    description: ClassVar[str] = ""
    #: Config fields that hold nested step lists; the loader parses them into StepDefs first.
    nested_fields: ClassVar[tuple[str, ...]] = ()
    #: Whether the step runs under its config's ``timeout``/``retries`` policy in the engine.
    retryable: ClassVar[bool] = False

    async def execute(self, step: StepDef, ctx: StepContext) -> Outcome:
        """Run the step. Raise to fail it; return :class:`Continue` or :class:`Halt`."""
        message = f"step type '{self.name}' does not implement execute()"
        raise NotImplementedError(message)  # abstract: every step type overrides it

    def on_failure(self, step: StepDef, ctx: StepContext) -> None:
        """Called when the step fails after nested steps already committed work (a loop whose
        body failed): undo what must not outlive the step, e.g. restore loop variables."""

    # ---- static analysis (validator, graph) -------------------------------------------------

    def targets(self, step: StepDef) -> list[tuple[str, str]]:
        """Jump targets besides ``next`` and ``on_error``: ``[(label, step_id)]``."""
        return []

    def resume_targets(self, step: StepDef) -> list[tuple[str, str]]:
        """Targets reached only when a halted execution is resumed: ``[(label, step_id)]``."""
        return []

    def falls_through(self, step: StepDef) -> bool:
        """Whether the step can continue to its ``next`` (a router never does)."""
        return True

    def outputs(self, step: StepDef) -> list[str]:
        """Variables the step sets when it completes."""
        output = getattr(step.config, "output", None)
        if isinstance(output, str):
            return [output]
        key = getattr(output, "key", None)
        return [key] if isinstance(key, str) else []

    def output_schema(self, step: StepDef) -> Mapping[str, Any] | None:
        """The JSON Schema of the step's output variable, when the workflow declares one."""
        return None

    def reads(self, step: StepDef) -> list[tuple[str, str]]:
        """References the step reads, as ``[(where, path)]`` (path without ``$``). The default
        finds ``$references`` in every config field except nested step lists."""
        from dwf import expr

        found: list[tuple[str, str]] = []
        for name in type(step.config).model_fields:
            if name in self.nested_fields:
                continue
            value = getattr(step.config, name)
            if isinstance(value, BaseModel):
                value = value.model_dump()
            found.extend((name, ref) for ref in expr.references(value))
        return found

    def bodies(self, step: StepDef) -> list[BodySpec]:
        """Nested step lists."""
        return []

    def check(self, step: StepDef, workflow: WorkflowDefinition) -> list[tuple[str, str]]:
        """Type-specific static problems: ``[(field, message)]``."""
        return []


# --------------------------------------------------------------------------------------------
# Top-level keys and the registry


@dataclass(frozen=True)
class TopLevelKey:
    """A top-level workflow key added by an extension (``agents``, ``tools``, ``mcp_servers``).

    ``model`` validates the raw value (any pydantic-compatible type, e.g. ``list[AgentDef]``);
    the parsed value is available as ``workflow.extensions[name]``. ``check`` returns static
    problems as ``[(path, message)]`` where path is a tuple into the section.
    """

    name: str
    model: Any
    description: str = ""
    check: Callable[[Any, WorkflowDefinition], list[tuple[tuple[str | int, ...], str]]] | None = (
        None
    )


class Extension(Protocol):
    """What an installed extension provides: a name and a ``setup`` that registers things."""

    name: str

    def setup(self, registry: Registry) -> None: ...


StepHook = Callable[["StepContext"], Awaitable[None]]


@dataclass
class Registry:
    """The step types, top-level keys and extensions known to one loader/engine."""

    _steps: dict[str, StepType[Any]] = field(default_factory=dict)
    _top_level: dict[str, TopLevelKey] = field(default_factory=dict)
    _extensions: dict[str, Extension] = field(default_factory=dict)

    # -- step types

    def register_step(self, step_type: type[StepType[Any]] | StepType[Any]) -> None:
        """Register a step type (class or instance). Re-registering a name replaces it."""
        instance = step_type() if isinstance(step_type, type) else step_type
        name = getattr(instance, "name", None)
        if not isinstance(name, str) or not name:
            raise RegistryError(f"step type {instance!r} has no 'name'")
        if not isinstance(getattr(instance, "config_model", None), type):
            raise RegistryError(f"step type '{name}' has no 'config_model'")
        self._steps[name] = instance

    def step_type(self, name: str) -> StepType[Any]:
        """The step type registered under ``name``; a :class:`RegistryError` explains a miss."""
        try:
            return self._steps[name]
        except KeyError:
            raise RegistryError(self.unknown_step_message(name), step_type=name) from None

    def has_step(self, name: str) -> bool:
        return name in self._steps

    def unknown_step_message(self, name: str) -> str:
        known = ", ".join(sorted(self._steps))
        return f"unknown step type '{name}'{did_you_mean(name, self._steps)}. Known types: {known}"

    @property
    def step_types(self) -> dict[str, StepType[Any]]:
        return dict(self._steps)

    # -- top-level keys

    def register_top_level_key(self, key: TopLevelKey) -> None:
        if key.name in CORE_TOP_LEVEL_KEYS:
            raise RegistryError(f"top-level key '{key.name}' belongs to dwf itself")
        self._top_level[key.name] = key

    @property
    def top_level_keys(self) -> dict[str, TopLevelKey]:
        return dict(self._top_level)

    # -- extensions

    def install(self, extension: Extension) -> None:
        """Let an extension register its step types and keys. Installing another extension
        with the same name replaces what the first one registered under the same names (so
        ``install(AIExtension(models=...))`` on a registry that already has the default AI
        extension configures it)."""
        extension.setup(self)
        self._extensions[extension.name] = extension

    @property
    def extensions(self) -> dict[str, Extension]:
        return dict(self._extensions)

    def copy(self) -> Registry:
        return Registry(dict(self._steps), dict(self._top_level), dict(self._extensions))

    @classmethod
    def with_installed_extensions(cls) -> Registry:
        """The core step types plus every extension installed in the ``dwf.extensions``
        entry-point group. An extension whose optional dependencies are missing still
        registers its step types (its SDKs are imported when a step runs)."""
        from importlib.metadata import entry_points

        registry = default_registry()
        for ep in sorted(entry_points(group="dwf.extensions"), key=lambda e: e.name):
            try:
                loaded = ep.load()
            except ImportError as exc:  # a broken install must not break dwf itself
                import logging

                logging.getLogger("dwf").warning(
                    "extension '%s' (%s) is skipped: it cannot be imported (%s)",
                    ep.name,
                    ep.value,
                    exc,
                )
                continue
            extension = loaded() if isinstance(loaded, type) else loaded
            registry.install(extension)
        return registry


CORE_TOP_LEVEL_KEYS = ("id", "name", "version", "description", "timeout", "inputs", "steps")


def default_registry() -> Registry:
    """A registry with the eleven core step types and nothing else."""
    from dwf.steps import CoreSteps

    registry = Registry()
    registry.install(CoreSteps())
    return registry
