"""Python tools: functions an agent can call, with a JSON Schema derived from the signature.

::

    tools = ToolRegistry()

    @tools.register
    @tool
    async def lookup_order(order_id: str, email: str | None = None) -> dict[str, Any]:
        \"\"\"Look up an order.

        Args:
            order_id: The order id, e.g. ORD-12345.
            email: The customer's email, to double check.
        \"\"\"
        ...

    registry.install(AIExtension(tools=tools))

The schema comes from the type hints (through pydantic), the descriptions from the docstring's
summary and its Google-style ``Args:`` section. A parameter named ``idempotency_key`` is not shown
to the model: it receives a key that is stable across retries and recoveries of the agent step
(``<step key>:<tool call id>``). Sync functions run in a worker thread. Agents name Python tools
in their ``tools`` list like YAML tools; a YAML tool with the same id wins in its workflow.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, overload

from pydantic import BaseModel, ConfigDict, Field, create_model

from dwf.errors import RegistryError
from dwf.extensions import did_you_mean
from dwf_ai.definitions import check_tool_name

__all__ = ["Tool", "ToolRegistry", "tool"]

_KEY_PARAM = "idempotency_key"
_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Returns|Return|Raises|Yields|Examples?|Notes?):\s*$"
)
_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


@dataclass(frozen=True, eq=False)
class Tool:
    """A Python function offered to agents: ``name``, ``description`` and the JSON Schema of its
    arguments (``parameters``). Calling the tool object calls the function."""

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any]
    needs_approval: bool = False
    arguments_model: type[BaseModel] = field(repr=False, default=BaseModel)
    takes_idempotency_key: bool = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def bind(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments for the function, validated and converted by pydantic
        (raises ``pydantic.ValidationError``, a ``ValueError``)."""
        validated = self.arguments_model.model_validate(arguments)
        return {
            info.alias or name: getattr(validated, name)
            for name, info in type(validated).model_fields.items()
        }

    async def call(self, kwargs: dict[str, Any], *, idempotency_key: str | None = None) -> Any:
        """Call the function with bound arguments; a sync one in a worker thread."""
        if self.takes_idempotency_key:
            kwargs = {**kwargs, _KEY_PARAM: idempotency_key}
        if inspect.iscoroutinefunction(self.function):
            return await self.function(**kwargs)
        result = await asyncio.to_thread(self.function, **kwargs)
        if inspect.isawaitable(result):
            return await result
        return result


@overload
def tool(function: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None, needs_approval: bool = False
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    needs_approval: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a :class:`Tool` of a function (sync or async), as ``@tool`` or ``@tool(...)``.

    Args:
        function: The function; its parameters become the tool's arguments.
        name: The name the model sees (default: the function's name).
        description: What the tool does (default: the docstring's summary).
        needs_approval: Halt the execution before each call until a person approves it.
    """

    def build(fn: Callable[..., Any]) -> Tool:
        return _build(fn, name=name, description=description, needs_approval=needs_approval)

    return build(function) if function is not None else build


def _build(
    fn: Callable[..., Any], *, name: str | None, description: str | None, needs_approval: bool
) -> Tool:
    tool_name = str(name or getattr(fn, "__name__", ""))
    try:
        check_tool_name(tool_name)
    except ValueError as exc:
        raise TypeError(f"@tool: {exc}") from None
    summary, arg_docs = _parse_docstring(inspect.getdoc(fn) or "")
    try:
        hints = inspect.get_annotations(fn, eval_str=True)
    except Exception as exc:
        raise TypeError(f"@tool '{tool_name}': cannot read its type hints: {exc}") from exc
    fields: dict[str, Any] = {}
    takes_key = False
    for index, param in enumerate(inspect.signature(fn).parameters.values()):
        if param.name == _KEY_PARAM:
            takes_key = True
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise TypeError(
                f"@tool '{tool_name}': parameter '{param.name}' must be a named parameter "
                "(no *args, **kwargs or positional-only), so the model can pass it by name"
            )
        annotation = hints.get(param.name, Any)
        default = ... if param.default is param.empty else param.default
        # Internal field names avoid clashes with BaseModel attributes (`schema`, `json`...).
        fields[f"p{index}"] = (
            annotation,
            Field(default, alias=param.name, description=arg_docs.get(param.name)),
        )
    model = create_model(
        f"{tool_name}_arguments",
        __config__=ConfigDict(extra="forbid", populate_by_name=False),
        **fields,
    )
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    return Tool(
        name=tool_name,
        description=description or summary or f"Call {tool_name}",
        parameters=schema,
        function=fn,
        needs_approval=needs_approval,
        arguments_model=model,
        takes_idempotency_key=takes_key,
    )


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary (text before the first section) and the ``Args:`` descriptions."""
    summary: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    indent: int | None = None
    for line in doc.splitlines():
        stripped = line.strip()
        heading = _SECTION.match(stripped)
        if heading and len(line) == len(line.lstrip()):
            section, current, indent = heading.group(1), None, None
            continue
        if section is None:
            summary.append(stripped)
            continue
        if section not in ("Args", "Arguments", "Parameters") or not stripped:
            continue
        level = len(line) - len(line.lstrip())
        match = _ARG_LINE.match(stripped)
        if match and (indent is None or level <= indent):
            indent = level
            current = match.group(1).lstrip("*")
            args[current] = match.group(2).strip()
        elif current is not None:
            args[current] = f"{args[current]} {stripped}".strip()
    text = "\n".join(summary).strip()
    return text.split("\n\n", 1)[0].replace("\n", " "), args


class ToolRegistry:
    """The Python tools of one :class:`~dwf_ai.AIExtension`, by name (no global state)."""

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            self.register(item)

    def register(self, item: Tool | Callable[..., Any]) -> Tool:
        """Add a tool (a :class:`Tool`, or a plain function made one with :func:`tool`).
        Returns the tool, so it works as a decorator. A second tool with a name is an error."""
        made = item if isinstance(item, Tool) else tool(item)
        if made.name in self._tools and self._tools[made.name] is not made:
            raise RegistryError(f"a Python tool named '{made.name}' is already registered")
        self._tools[made.name] = made
        return made

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __getitem__(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            known = ", ".join(sorted(self._tools)) or "none"
            raise RegistryError(
                f"no Python tool '{name}'{did_you_mean(name, self._tools)}; registered: {known}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        return sorted(self._tools)
