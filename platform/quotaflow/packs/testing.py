"""`quotaflow pack test`: a pack's golden cases run against its own compiled definitions.

Each case gives inputs and expected outputs for a scorecard, a form's computed fields, a
formula KPI or a lone formula; a failure names the case and shows expected against actual.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from quotaflow.expressions import ExpressionError
from quotaflow.forms.engine import evaluate_form
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import FieldDef, TestCaseDef


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One case: its name and the mismatches (empty when it passed)."""

    name: str
    mismatches: tuple[tuple[str, Any, Any], ...]  # (output, expected, actual)
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.mismatches and not self.error


def run_pack_tests(pack: CompiledPack) -> list[CaseResult]:
    """Every case of every pack_test document, in file order."""
    results = []
    for test in pack.pack_tests.values():
        for i, case in enumerate(test.cases):
            name = f"{test.id}[{i + 1}]" + (f" {case.name}" if case.name else "")
            try:
                actual = _outputs(pack, test.id, i, case)
            except (ExpressionError, KeyError, ValueError, ArithmeticError) as exc:
                results.append(CaseResult(name, (), f"could not run: {exc}"))
                continue
            mismatches = tuple(
                (key, want, actual.get(key))
                for key, want in case.expect.items()
                if not same(want, actual.get(key))
            )
            results.append(CaseResult(name, mismatches))
    return results


def _outputs(pack: CompiledPack, test_id: str, index: int, case: TestCaseDef) -> Mapping[str, Any]:
    if case.scorecard:
        from quotaflow.scorecards.engine import score_card

        return score_card(pack, case.scorecard, case.given).outputs()
    if case.form:
        fields = {f.id: f for f in pack.forms[case.form].fields}
        values = {k: typed_given(fields[k], v) if k in fields else v for k, v in case.given.items()}
        stage = case.given.get("stage")
        return evaluate_form(pack, case.form, values, stage=stage).values
    if case.kpi:
        kpi = pack.kpis[case.kpi]
        if kpi.formula is None:
            raise ValueError(f"KPI {case.kpi} is an aggregate; golden cases test formula KPIs")
        return {case.kpi: pack.expression("kpi", case.kpi, "formula").evaluate(case.given)}
    if case.formula:
        result = pack.expression("pack_test", test_id, "cases", index, "formula").evaluate(
            case.given
        )
        return {"result": result}
    raise ValueError("target plan cases are not supported yet")


def typed_given(field: FieldDef, value: Any) -> Any:
    """A YAML value as the form engine holds it (money and percent exact, dates as dates)."""
    if value is None:
        return None
    if field.type in ("money", "percent", "number") and not isinstance(value, bool):
        return Decimal(str(value))
    if field.type == "date" and isinstance(value, str):
        return date.fromisoformat(value)
    return value


def same(expected: Any, actual: Any) -> bool:
    """Equal, numbers compared to the precision the expectation is written with."""
    if expected is None or actual is None:
        return expected is None and actual is None
    numeric = (int, float, Decimal)
    if (
        isinstance(expected, numeric)
        and isinstance(actual, numeric)
        and not isinstance(expected, bool)
    ):
        want, got = Decimal(str(expected)), Decimal(str(actual))
        exponent = want.as_tuple().exponent
        places = max(-exponent, 0) if isinstance(exponent, int) else 0
        return abs(want - got) <= Decimal(1).scaleb(-places) / 2
    return bool(expected == actual)
