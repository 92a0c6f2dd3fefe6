"""Checking one document against its kind's JSON Schema, in words a consultant understands."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from quotaflow.packs.definitions import ID_PATTERN, KINDS, PERIOD_PATTERN
from quotaflow.packs.problems import Path_, did_you_mean, unknown
from quotaflow.packs.schema import document_schema

TYPE_WORDS = {
    "string": "text",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping (key: value)",
    "null": "nothing",
}
PATTERN_WORDS = {
    ID_PATTERN: "is not a valid id: use lowercase letters, digits and _, starting with a letter",
    PERIOD_PATTERN: "is not a period: use FY2026, 2026, 2026-H1, 2026-Q3 or 2026-07",
}


@cache
def validator_for(kind: str) -> Draft202012Validator:
    """A compiled validator for one kind (schemas come from the definition dataclasses)."""
    return Draft202012Validator(document_schema(kind, KINDS[kind]))


def kind_problem(data: Any) -> str | None:
    """Why this document has no usable `kind`, or None."""
    if not isinstance(data, dict):
        return f"a definition must be a mapping with 'kind' and 'id', got {describe(data)}"
    kind = data.get("kind")
    if kind is None:
        return f"missing 'kind' (one of: {', '.join(KINDS)})"
    if kind not in KINDS:
        return (
            unknown("kind", str(kind), KINDS)
            if did_you_mean(str(kind), KINDS)
            else (f"unknown kind '{kind}' (one of: {', '.join(KINDS)})")
        )
    return None


def schema_problems(kind: str, data: dict[str, Any]) -> Iterator[tuple[Path_, str]]:
    """(path, message) for everything the schema refuses in this document."""
    errors = sorted(validator_for(kind).iter_errors(data), key=lambda e: list(map(str, e.path)))
    for error in errors:
        yield from _explain(error, tuple(error.absolute_path))


def describe(value: Any) -> str:
    """A value as a message quotes it: text 'abc', the number 3, a list..."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"text '{value[:60]}'"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "nothing" if value is None else type(value).__name__


def _explain(error: ValidationError, path: Path_) -> Iterator[tuple[Path_, str]]:
    v, value, schema = error.validator, error.instance, error.schema
    if v == "additionalProperties" and isinstance(value, dict):
        known = list(schema.get("properties", {}))
        for key in value:
            if key not in known:
                yield (*path, key), unknown("key", key, known)
    elif v == "required":
        for key in error.validator_value:
            if key not in value:
                yield path, f"missing required key '{key}'"
    elif v == "type":
        wanted = error.validator_value
        words = " or ".join(
            TYPE_WORDS[t] for t in ([wanted] if isinstance(wanted, str) else wanted)
        )
        yield path, f"expected {words}, got {describe(value)}"
    elif v == "enum":
        options = [str(o) for o in error.validator_value]
        hint = did_you_mean(str(value), options)
        yield path, f"expected one of: {', '.join(options)}; got {describe(value)}{hint}"
    elif v == "pattern":
        pattern_words = PATTERN_WORDS.get(error.validator_value)
        if pattern_words is None and "version" in [str(p) for p in path[-1:]]:
            pattern_words = "is not a version like 1.0.0"
        yield path, f"'{value}' {pattern_words or 'does not match ' + error.validator_value}"
    elif v == "anyOf":
        yield from _explain_any_of(error, path)
    elif v in ("minimum", "maximum"):
        side = "at least" if v == "minimum" else "at most"
        yield path, f"must be {side} {error.validator_value}, got {value}"
    elif v in ("minItems", "maxItems"):
        side = "at least" if v == "minItems" else "at most"
        yield path, f"needs {side} {error.validator_value} item(s)"
    elif v in ("minLength", "maxLength"):
        side = "at least" if v == "minLength" else "at most"
        yield path, f"must be {side} {error.validator_value} characters long"
    else:
        yield path, error.message


def _explain_any_of(error: ValidationError, path: Path_) -> Iterator[tuple[Path_, str]]:
    # When the value has the right shape for one option, the useful errors are inside it.
    nested = [e for e in error.context if list(e.relative_path)]
    at_root = [e for e in error.context if not list(e.relative_path)]
    inner = nested + [e for e in at_root if e.validator not in ("type", "enum")]
    if inner:
        for sub in inner:
            yield from _explain(sub, (*path, *sub.relative_path))
        return
    words = []
    for option in error.validator_value:
        if "$ref" in option:
            words.append(TYPE_WORDS["object"])
        elif "enum" in option:
            words.append("one of " + ", ".join(map(str, option["enum"])))
        elif "type" in option:
            words.append(TYPE_WORDS[option["type"]])
    if error.schema.get("description", "").startswith("Text, or a map of locale"):
        words = ["text", "a map of locale to text like {en: Deal, zh: 商机}"]
    yield path, f"expected {' or '.join(dict.fromkeys(words))}, got {describe(error.instance)}"
