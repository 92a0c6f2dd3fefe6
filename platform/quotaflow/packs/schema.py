"""JSON Schemas generated from the definition dataclasses, and dicts built back into them.

The dataclasses in `definitions.py` are the single source: the schema a consultant's editor
uses and the objects the runtime uses come from the same type hints, so they cannot drift.
Field metadata (see `meta`) adds what type hints cannot say: a description, an alias for a
key that is a Python keyword, and extra JSON Schema keywords (pattern, minimum, ...).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

SCHEMA_BASE_URL = "https://quotaflow.dev/schema/"


def meta(description: str = "", *, alias: str | None = None, **keywords: Any) -> dict[str, Any]:
    """Metadata for a definition field: its description, key alias and JSON Schema keywords."""
    return {"description": description, "alias": alias, "schema": keywords}


class JsonSchema:
    """Extra JSON Schema keywords for a type alias: `Annotated[str, JsonSchema(pattern=...)]`."""

    def __init__(self, **keywords: Any) -> None:
        self.keywords = keywords


def key_of(field: dataclasses.Field[Any]) -> str:
    """The key a field has in a pack file (its alias, else its name)."""
    return field.metadata.get("alias") or field.name


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls, include_extras=True)


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _strip_annotated(tp: Any) -> tuple[Any, dict[str, Any]]:
    extra: dict[str, Any] = {}
    while get_origin(tp) is Annotated:
        tp, *annotations = get_args(tp)
        for annotation in annotations:
            if isinstance(annotation, JsonSchema):
                extra.update(annotation.keywords)
    return tp, extra


class _SchemaBuilder:
    def __init__(self) -> None:
        self.defs: dict[str, Any] = {}

    def of_type(self, tp: Any) -> dict[str, Any]:
        tp, extra = _strip_annotated(tp)
        return {**self._bare(tp), **extra}

    def _bare(self, tp: Any) -> dict[str, Any]:
        origin = get_origin(tp)
        if tp is Any:
            return {}
        if tp is str:
            return {"type": "string"}
        if tp is bool:
            return {"type": "boolean"}
        if tp is int:
            return {"type": "integer"}
        if tp in (float, Decimal):
            return {"type": "number"}
        if origin is Literal:
            return {"enum": list(get_args(tp))}
        if _is_union(tp):
            options = [a for a in get_args(tp) if a is not type(None)]
            if len(options) == 1:
                return self.of_type(options[0])
            return {"anyOf": [self.of_type(a) for a in options]}
        if origin is tuple:
            return {"type": "array", "items": self.of_type(get_args(tp)[0])}
        if origin in (dict, Mapping, typing.Mapping):
            return {"type": "object", "additionalProperties": self.of_type(get_args(tp)[1])}
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            name = tp.__name__
            if name not in self.defs:
                self.defs[name] = {}  # reserve first: definitions may refer to themselves
                self.defs[name] = self.object_schema(tp)
            return {"$ref": f"#/$defs/{name}"}
        raise TypeError(f"no JSON Schema for {tp!r}")

    def object_schema(self, cls: type) -> dict[str, Any]:
        hints = _hints(cls)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in dataclasses.fields(cls):
            key = key_of(field)
            schema = self.of_type(hints[field.name])
            schema.update(field.metadata.get("schema", {}))
            if field.metadata.get("description"):
                schema = {"description": field.metadata["description"], **schema}
            properties[key] = schema
            no_default = field.default is dataclasses.MISSING
            if no_default and field.default_factory is dataclasses.MISSING:
                required.append(key)
        out: dict[str, Any] = {"type": "object"}
        if cls.__doc__:
            out["description"] = cls.__doc__.strip().splitlines()[0]
        out["properties"] = properties
        if required:
            out["required"] = required
        out["additionalProperties"] = False
        return out


def document_schema(kind: str, cls: type) -> dict[str, Any]:
    """The draft 2020-12 JSON Schema of one definition kind."""
    builder = _SchemaBuilder()
    body = builder.object_schema(cls)
    # editors find the schema through a `$schema` key in the file; allow it
    body["properties"] = {"$schema": {"type": "string"}, **body["properties"]}
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SCHEMA_BASE_URL}{kind}.schema.json",
        "title": f"Quotaflow {kind.replace('_', ' ')} definition",
        **body,
    }
    if builder.defs:
        schema["$defs"] = dict(sorted(builder.defs.items()))
    return schema


def schema_text(schema: Mapping[str, Any]) -> str:
    """The exact text committed under definitions/schema/ (stable, diff-friendly)."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_schemas(kinds: Mapping[str, type], folder: Path) -> list[Path]:
    """Write one <kind>.schema.json per kind; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, cls in kinds.items():
        path = folder / f"{kind}.schema.json"
        path.write_text(schema_text(document_schema(kind, cls)), encoding="utf-8")
        written.append(path)
    return written


def stale_schemas(kinds: Mapping[str, type], folder: Path) -> list[str]:
    """Kinds whose committed schema file differs from the one the dataclasses generate."""
    stale = []
    for kind, cls in kinds.items():
        path = folder / f"{kind}.schema.json"
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != schema_text(document_schema(kind, cls)):
            stale.append(kind)
    return stale


# --- dicts (already schema-valid) into dataclasses ---------------------------------------


def build(cls: type, data: Mapping[str, Any]) -> Any:
    """Build a definition dataclass from a schema-validated mapping."""
    hints = _hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        key = key_of(field)
        if key in data:
            kwargs[field.name] = _convert(hints[field.name], data[key])
    return cls(**kwargs)


def _matches(tp: Any, value: Any) -> bool:
    tp, _ = _strip_annotated(tp)
    origin = get_origin(tp)
    if tp is Any:
        return True
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if tp in (int, float, Decimal):
        return isinstance(value, int | float | Decimal) and not isinstance(value, bool)
    if origin is Literal:
        return value in get_args(tp)
    if origin is tuple:
        return isinstance(value, list | tuple)
    if dataclasses.is_dataclass(tp) or origin in (dict, Mapping, typing.Mapping):
        return isinstance(value, Mapping)
    return _is_union(tp) and any(_matches(a, value) for a in get_args(tp))


def _convert(tp: Any, value: Any) -> Any:
    tp, _ = _strip_annotated(tp)
    origin = get_origin(tp)
    if value is None:
        return None
    if _is_union(tp):
        for option in get_args(tp):
            if option is not type(None) and _matches(option, value):
                return _convert(option, value)
        return value
    if tp is Decimal:
        return Decimal(str(value))
    if tp is float:
        return float(value)
    if origin is tuple:
        return tuple(_convert(get_args(tp)[0], v) for v in value)
    if origin in (dict, Mapping, typing.Mapping):
        return {k: _convert(get_args(tp)[1], v) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return build(tp, value)  # type: ignore[arg-type]
    return value
