"""`quotaflow expr ...` commands: check and evaluate formulas from the shell."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import click

from quotaflow.expressions.engine import compile_expression
from quotaflow.expressions.errors import ExpressionError
from quotaflow.expressions.types import ValueType, type_of_value

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
TYPE_NAMES = [t.value for t in ValueType]


@click.group("expr")
def expr_group() -> None:
    """Check and evaluate formulas in the expression language."""


def _fail(exc: ExpressionError) -> None:
    click.secho(f"Error: {exc.describe()}", err=True, fg="red")
    raise SystemExit(1)


def _parse_names(spec: str) -> dict[str, ValueType]:
    """'a,b:money,c:date' -> {a: any, b: money, c: date}."""
    names: dict[str, ValueType] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, kind = part.partition(":")
        try:
            names[name.strip()] = ValueType(kind.strip() or "any")
        except ValueError:
            raise click.BadParameter(
                f"unknown type '{kind}' (one of {', '.join(TYPE_NAMES)})", param_hint="--names"
            ) from None
    return names


def _from_json(value: Any) -> Any:
    """JSON values for evaluation: ISO dates and date-times become dates."""
    if isinstance(value, str):
        try:
            if _ISO_DATE.match(value):
                return date.fromisoformat(value)
            if _ISO_DATETIME.match(value):
                return datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _to_json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    return value


@expr_group.command("check")
@click.argument("expression")
@click.option("--names", default="", help="Names the expression may use: a,b:money,c:date")
@click.option("--expect", type=click.Choice(TYPE_NAMES), help="The type the result must have.")
def check_command(expression: str, names: str, expect: str | None) -> None:
    """Check EXPRESSION; print what it uses and its type as JSON, or the error with a caret."""
    try:
        compiled = compile_expression(
            expression, _parse_names(names), expect=ValueType(expect) if expect else None
        )
    except ExpressionError as exc:
        _fail(exc)
        return
    reason = compiled.sql_unsupported_reason()
    click.echo(
        json.dumps(
            {
                "ok": True,
                "type": compiled.result_type.value,
                "names": sorted(compiled.names),
                "functions": sorted(compiled.functions),
                "sql": reason or "translatable",
            }
        )
    )


@expr_group.command("eval")
@click.argument("expression")
@click.option("--vars", "vars_json", default="{}", help='Values as a JSON object: {"a": 1}')
@click.option("--today", help="The date TODAY() returns (YYYY-MM-DD).")
def eval_command(expression: str, vars_json: str, today: str | None) -> None:
    """Evaluate EXPRESSION with --vars; print the result as JSON (blank is null)."""
    try:
        raw = json.loads(vars_json)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--vars") from None
    if not isinstance(raw, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--vars")
    values = {str(k): _from_json(v) for k, v in raw.items()}
    names = {k: type_of_value(v) if v is not None else ValueType.ANY for k, v in values.items()}
    day = None
    if today:
        try:
            day = date.fromisoformat(today)
        except ValueError:
            raise click.BadParameter("must be a date YYYY-MM-DD", param_hint="--today") from None
    try:
        compiled = compile_expression(expression, names)
        result = compiled.evaluate(values, today=day)
    except ExpressionError as exc:
        _fail(exc)
        return
    click.echo(json.dumps(_to_json(result)))
