"""Plain data (from YAML or Python) -> a typed :class:`WorkflowDefinition`.

Every problem is collected as a located :class:`Diagnostic`; parsing raises one
:class:`WorkflowLoadError` listing all of them, never a raw pydantic or Python error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from dwf import expr
from dwf.dsl.model import InputSpec, StepDef, WorkflowDefinition, _Header
from dwf.dsl.yaml_source import Path, SourceDocument
from dwf.errors import Diagnostic
from dwf.extensions import CORE_TOP_LEVEL_KEYS, FINISHED, Registry, did_you_mean

__all__ = ["parse_document"]

STEP_COMMON_KEYS = ("id", "type", "next", "on_error")
_BAD_ID = re.compile(r"[\s/\[\]|#$:]")

# Top-level keys that belong to extensions dwf knows about; without the extension installed they
# are reported as a warning that says what to install, not as a typo.
KNOWN_EXTENSION_KEYS = {
    "agents": ("ai", 'pip install "dwf[ai]"'),
    "tools": ("ai", 'pip install "dwf[ai]"'),
    "mcp_servers": ("ai", 'pip install "dwf[ai]"'),
}
KNOWN_EXTENSION_STEPS = {"agent", "guardrail", "handoff", "file_search", "mcp"}


def _type_name(value: Any) -> str:
    # YAML users call JSON objects "mappings".
    name = expr.type_name(value)
    return "mapping" if name == "object" else name


class _Parser:
    def __init__(self, doc: SourceDocument, registry: Registry) -> None:
        self.doc = doc
        self.registry = registry
        self.diagnostics: list[Diagnostic] = []

    # -- diagnostics

    def report(
        self,
        path: Path,
        message: str,
        *,
        step_id: str | None = None,
        key: bool = False,
        severity: str = "error",
    ) -> None:
        mark = self.doc.key_mark(path) if key else self.doc.mark(path)
        self.diagnostics.append(
            Diagnostic(
                message,
                file=self.doc.file,
                line=mark.line if mark else None,
                column=mark.column if mark else None,
                step_id=step_id,
                severity="warning" if severity == "warning" else "error",
            )
        )

    def report_pydantic(
        self,
        exc: ValidationError,
        base: Path,
        data: Any,
        model: type[BaseModel] | None,
        *,
        step_id: str | None = None,
        prefix: str = "",
    ) -> None:
        for err in exc.errors(include_url=False):
            loc = tuple(
                p for p in err["loc"] if not isinstance(p, str) or not p.startswith("function-")
            )
            path = base + loc
            where = ".".join(str(p) for p in loc)
            kind = err["type"]
            if kind == "extra_forbidden":
                name = str(loc[-1]) if loc else "?"
                choices = (
                    [f.alias or n for n, f in model.model_fields.items()]
                    if model is not None and len(loc) == 1
                    else []
                )
                common = list(STEP_COMMON_KEYS) if step_id is not None and choices else []
                known = f" Valid keys: {', '.join([*choices, *common])}." if choices else ""
                suggestion = did_you_mean(name, [*choices, *common])
                message = f"{prefix}unknown key '{name}'{suggestion}.{known}"
                self.report(path, message, step_id=step_id, key=True)
            elif kind == "missing":
                parent = base + loc[:-1]
                self.report(parent, f"{prefix}missing required key '{where}'", step_id=step_id)
            else:
                got = _lookup(data, loc)
                detail = err["msg"]
                if kind == "value_error":
                    detail = detail.removeprefix("Value error, ")
                detail = re.sub(r"instance of \w+", "mapping", detail)
                got_text = _type_name(got)
                if not isinstance(got, dict | list):
                    got_text += f" {got!r}"
                self.report(
                    path,
                    f"{prefix}'{where}': {detail[0].lower()}{detail[1:]} (got {got_text})"
                    if where
                    else f"{prefix}{detail}",
                    step_id=step_id,
                )

    # -- the document

    def parse(self) -> WorkflowDefinition | None:
        data = self.doc.data
        if data is None:
            self.report(
                (), "the document is empty; a workflow needs at least 'id', 'name' and 'steps'"
            )
            return None
        if not isinstance(data, dict):
            self.report(
                (),
                "a workflow must be a mapping with 'id', 'name' and 'steps', "
                f"got {_type_name(data)}",
            )
            return None

        header = self._header(data)
        inputs = self._inputs(data.get("inputs"))
        extensions = self._extension_keys(data)
        steps = self._steps(data.get("steps"), ("steps",), required=True)
        if header is None or steps is None or self.errors:
            return None
        return WorkflowDefinition(
            id=header.id,
            name=header.name,
            version=header.version,
            description=header.description,
            timeout=header.timeout,
            inputs=inputs,
            steps=steps,
            extensions=extensions,
            raw=data,
            source=self.doc,
            warnings=[d for d in self.diagnostics if d.severity == "warning"],
        )

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def _header(self, data: dict[str, Any]) -> _Header | None:
        fields = {
            k: data[k] for k in ("id", "name", "version", "description", "timeout") if k in data
        }
        try:
            return _Header.model_validate(fields)
        except ValidationError as exc:
            self.report_pydantic(exc, (), fields, _Header)
            return None

    def _inputs(self, raw: Any) -> dict[str, InputSpec]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.report(
                ("inputs",),
                f"'inputs' must be a mapping of input name to spec, got {_type_name(raw)}",
            )
            return {}
        inputs: dict[str, InputSpec] = {}
        for name, spec in raw.items():
            if not name.isidentifier():
                self.report(
                    ("inputs", name),
                    f"input name '{name}' must be an identifier (letters, digits, '_')",
                    key=True,
                )
                continue
            try:
                inputs[name] = InputSpec.model_validate(spec)
            except ValidationError as exc:
                self.report_pydantic(
                    exc, ("inputs", name), spec, InputSpec, prefix=f"input '{name}': "
                )
        return inputs

    def _extension_keys(self, data: dict[str, Any]) -> dict[str, Any]:
        registered = self.registry.top_level_keys
        extensions: dict[str, Any] = {}
        for key, value in data.items():
            if key in CORE_TOP_LEVEL_KEYS:
                continue
            spec = registered.get(key)
            if spec is not None:
                try:
                    extensions[key] = TypeAdapter(spec.model).validate_python(value)
                except ValidationError as exc:
                    self.report_pydantic(exc, (key,), value, None, prefix=f"'{key}': ")
                continue
            if key in KNOWN_EXTENSION_KEYS:
                ext, install = KNOWN_EXTENSION_KEYS[key]
                self.report(
                    (key,),
                    f"top-level key '{key}' is ignored: it needs the '{ext}' extension ({install})",
                    key=True,
                    severity="warning",
                )
                continue
            choices = [*CORE_TOP_LEVEL_KEYS, *registered]
            self.report(
                (key,),
                f"unknown top-level key '{key}'{did_you_mean(key, choices)}. "
                f"Valid keys: {', '.join(choices)}",
                key=True,
            )
        return extensions

    # -- steps

    def _steps(self, raw: Any, path: Path, *, required: bool = False) -> list[StepDef] | None:
        if raw is None:
            if required:
                self.report((), "missing required key 'steps' (a list of steps)")
            return None if required else []
        if not isinstance(raw, list):
            self.report(path, f"'{path[-1]}' must be a list of steps, got {_type_name(raw)}")
            return None
        steps: list[StepDef] = []
        for index, item in enumerate(raw):
            step = self._step(item, (*path, index))
            if step is not None:
                steps.append(step)
        return steps

    def _step(self, raw: Any, path: Path) -> StepDef | None:
        if not isinstance(raw, dict):
            self.report(
                path, f"a step must be a mapping with 'id' and 'type', got {_type_name(raw)}"
            )
            return None
        step_id = raw.get("id")
        if not isinstance(step_id, str) or not step_id:
            what = (
                "missing required key 'id'"
                if step_id is None
                else f"'id' must be a string, got {_type_name(step_id)}"
            )
            self.report(path if step_id is None else (*path, "id"), f"step: {what}")
            return None
        if _BAD_ID.search(step_id) or step_id == FINISHED:
            self.report(
                (*path, "id"),
                f"step id '{step_id}' may not contain spaces or any of / [ ] | # $ : "
                "(they mark step paths); use letters, digits, '_', '-' or '.'",
            )
            return None
        ok = True
        for key in ("next", "on_error"):
            if raw.get(key) is not None and not isinstance(raw[key], str):
                self.report(
                    (*path, key),
                    f"'{key}' must be a step id (string), got {_type_name(raw[key])}",
                    step_id=step_id,
                )
                ok = False
        type_name = raw.get("type")
        if not isinstance(type_name, str):
            what = (
                "missing required key 'type'"
                if type_name is None
                else f"'type' must be a string, got {_type_name(type_name)}"
            )
            self.report(path if type_name is None else (*path, "type"), what, step_id=step_id)
            return None
        if not self.registry.has_step(type_name):
            if type_name in KNOWN_EXTENSION_STEPS:
                message = (
                    f"unknown step type '{type_name}': it belongs to the AI extension, which is "
                    'not installed (pip install "dwf[ai]")'
                )
            else:
                message = self.registry.unknown_step_message(type_name)
            self.report((*path, "type"), message, step_id=step_id)
            return None
        step_type = self.registry.step_type(type_name)
        config_data = {k: v for k, v in raw.items() if k not in STEP_COMMON_KEYS}
        for field_name in step_type.nested_fields:
            nested = config_data.get(field_name)
            if nested is None:
                continue
            parsed = self._steps(nested, (*path, field_name))
            if parsed is None:
                ok = False
                continue
            config_data[field_name] = parsed
        model = step_type.config_model
        try:
            config = model.model_validate(config_data)
        except ValidationError as exc:
            self.report_pydantic(exc, path, config_data, model, step_id=step_id)
            return None
        if not ok:
            return None
        return StepDef(
            id=step_id,
            type=type_name,
            config=config,
            next=raw.get("next"),
            on_error=raw.get("on_error"),
            source_path=path,
        )


def _lookup(data: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        if isinstance(data, Mapping):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return None
    return data


def parse_document(
    doc: SourceDocument, registry: Registry
) -> tuple[WorkflowDefinition | None, list[Diagnostic]]:
    """Parse a loaded document. Returns the definition (``None`` when there were errors) and
    every diagnostic, warnings included."""
    parser = _Parser(doc, registry)
    definition = parser.parse()
    return definition, parser.diagnostics
